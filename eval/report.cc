#include "eval/report.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "eval/stats.h"

namespace bpo::eval {
namespace {

// Okabe & Ito's colour-blind-safe palette, ordered for contrast on white
// (yellow last).
constexpr std::array<const char*, 8> kPalette = {"#0072B2", "#D55E00", "#009E73", "#E69F00",
                                                 "#CC79A7", "#56B4E9", "#000000", "#F0E442"};
constexpr double kFontSize = 12;
constexpr double kPad = 8;  // between the frame and the outermost data or ticks

// Fixed notation, independent of the C locale, without "-0".
std::string Fixed(double v, int decimals) {
  char buf[400];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed,
                               std::clamp(decimals, 0, 20));
  if (r.ec != std::errc()) return "nan";
  std::string s(buf, r.ptr);
  if (s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
  return s;
}

// An SVG coordinate: at most 2 decimals, trailing zeros dropped.
std::string Num(double v) {
  std::string s = Fixed(std::clamp(v, -1e5, 1e5), 2);
  if (s.find('.') != std::string::npos) {
    s.erase(s.find_last_not_of('0') + 1);
    if (s.back() == '.') s.pop_back();
  }
  return s == "-0" ? "0" : s;
}

size_t CodePoints(std::string_view s) {
  return std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; });
}

struct TextStyle {
  double size = kFontSize;
  bool bold = false;
  // A generous average glyph width of sans-serif fonts (DejaVu Sans is wide).
  double CharWidth() const { return size * (bold ? 0.68 : 0.6); }
};
constexpr TextStyle kTitle{14, true};
constexpr TextStyle kPanelTitle{13, true};

double TextWidth(std::string_view s, TextStyle style = {}) {
  return style.CharWidth() * static_cast<double>(CodePoints(s));
}

// `s` cut at a code point boundary and ended with an ellipsis to fit `px`.
std::string FitText(const std::string& s, double px, TextStyle style) {
  if (TextWidth(s, style) <= px) return s;
  const size_t keep = static_cast<size_t>(std::max(0.0, px / style.CharWidth() - 1));
  size_t points = 0, i = 0;
  for (; i < s.size(); ++i) {
    if ((s[i] & 0xC0) != 0x80 && points++ == keep) break;
  }
  return s.substr(0, i) + "\xE2\x80\xA6";
}

// <text> at (x, y) with `anchor` (start, middle, end), shortened to `max_px`
// (a <title> then keeps the full text), and optional extra attributes.
void AppendText(std::string& out, double x, double y, const char* anchor, const std::string& text,
                double max_px = 1e9, TextStyle style = {}, absl::string_view extra = "") {
  const std::string shown = FitText(text, max_px, style);
  absl::StrAppend(&out, "<text x=\"", Num(x), "\" y=\"", Num(y), "\" text-anchor=\"", anchor, "\"");
  if (style.size != kFontSize) absl::StrAppend(&out, " font-size=\"", Num(style.size), "\"");
  if (style.bold) absl::StrAppend(&out, " font-weight=\"bold\"");
  absl::StrAppend(&out, extra.empty() ? "" : " ", extra, ">");
  if (shown != text) absl::StrAppend(&out, "<title>", XmlEscape(text), "</title>");
  absl::StrAppend(&out, XmlEscape(shown), "</text>\n");
}

void AppendLine(std::string& out, double x1, double y1, double x2, double y2,
                absl::string_view attrs) {
  absl::StrAppend(&out, "<line x1=\"", Num(x1), "\" y1=\"", Num(y1), "\" x2=\"", Num(x2),
                  "\" y2=\"", Num(y2), "\" ", attrs, "/>\n");
}

void AppendSvgStart(std::string& out, int width, int height) {
  absl::StrAppend(&out, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"", width,
                  "\" height=\"", height, "\" viewBox=\"0 0 ", width, " ", height,
                  "\" font-family=\"sans-serif\" font-size=\"", Num(kFontSize), "\">\n",
                  "<rect width=\"", width, "\" height=\"", height, "\" fill=\"#ffffff\"/>\n");
}

// A numeric axis: the domain [lo, hi] (exponents on a log2 axis), its ticks
// and their labels, mapped onto pixels [px_lo, px_hi].
struct Axis {
  double lo = 0, hi = 1;
  bool log2 = false;
  std::vector<double> ticks;  // in data units
  std::vector<std::string> labels;
  double px_lo = 0, px_hi = 1;

  double Map(double v) const {
    const double t = log2 ? std::log2(v) : v;
    return px_lo + (t - lo) / (hi - lo) * (px_hi - px_lo);
  }
  double LabelWidthMax() const {
    double w = 0;
    for (const std::string& l : labels) w = std::max(w, TextWidth(l));
    return w;
  }
};

// Labels for ticks `step` apart: as many decimals as the step needs, or
// 4 significant digits on every tick when any is huge or the step tiny.
std::vector<std::string> TickLabels(const std::vector<double>& ticks, double step) {
  bool general = step < 1e-4;
  for (double t : ticks) general = general || std::abs(t) >= 1e6;
  std::vector<std::string> labels;
  for (double t : ticks) {
    if (general) {
      char buf[64];
      const auto r = std::to_chars(buf, buf + sizeof(buf), t, std::chars_format::general, 4);
      labels.emplace_back(buf, r.ptr);
    } else {
      labels.push_back(
          Fixed(t, step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9))));
    }
  }
  return labels;
}

// A linear axis over the data range [lo, hi] whose unset bounds extend to the
// nice ticks around the data.
Axis LinearAxis(double lo, double hi, std::optional<double> fixed_lo,
                std::optional<double> fixed_hi, int intervals_max) {
  lo = fixed_lo.value_or(lo);
  hi = fixed_hi.value_or(hi);
  if (fixed_lo && !fixed_hi) hi = std::max(hi, lo);
  if (fixed_hi && !fixed_lo) lo = std::min(lo, hi);
  const std::vector<double> ticks = NiceTicks(lo, hi, intervals_max);
  Axis axis;
  axis.lo = fixed_lo.value_or(ticks.front());
  axis.hi = fixed_hi.value_or(ticks.back());
  const double eps = 1e-9 * (axis.hi - axis.lo);
  for (double t : ticks) {
    if (t >= axis.lo - eps && t <= axis.hi + eps) axis.ticks.push_back(t);
  }
  axis.labels = TickLabels(axis.ticks, ticks[1] - ticks[0]);
  return axis;
}

std::string Pow2Label(int e) {
  if (e >= 0 && e <= 20) return absl::StrCat(int64_t{1} << e);
  if (e < 0 && e >= -3) return Fixed(std::ldexp(1.0, e), -e);
  return absl::StrCat("2^", e);
}

// A log2 axis over positive [lo, hi] with ticks at powers of two.
Axis Log2Axis(double lo, double hi, int intervals_max) {
  int e_lo = static_cast<int>(std::floor(std::log2(lo) + 1e-9));
  int e_hi = static_cast<int>(std::ceil(std::log2(hi) - 1e-9));
  if (e_lo >= e_hi) --e_lo, ++e_hi;
  const int step = std::max(1, (e_hi - e_lo + intervals_max - 1) / intervals_max);
  e_hi = e_lo + (e_hi - e_lo + step - 1) / step * step;
  Axis axis;
  axis.log2 = true;
  axis.lo = e_lo;
  axis.hi = e_hi;
  for (int e = e_lo; e <= e_hi; e += step) {
    axis.ticks.push_back(std::ldexp(1.0, e));
    axis.labels.push_back(Pow2Label(e));
  }
  return axis;
}

// make(intervals_max) with the most intervals, up to `intervals_max`, that
// leave room between the tick labels along `px` pixels.
template <typename MakeAxis>
Axis SpacedAxis(const MakeAxis& make, double px, int intervals_max) {
  for (int n = intervals_max;; --n) {
    Axis axis = make(n);
    const double gaps = static_cast<double>(axis.ticks.size()) - 1;
    if (n <= 2 || gaps < 1 || px / gaps >= axis.LabelWidthMax() + 12) return axis;
  }
}

absl::Status Invalid(const std::string& what, const std::string& title, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(what, " \"", title, "\": ", message));
}

bool Finite(double v) { return std::isfinite(v); }

struct Point {
  double x, y;
};

// Pixel polylines of the contiguous finite runs of (x[i], y[i]).
std::vector<std::vector<Point>> Segments(const std::vector<double>& x, const std::vector<double>& y,
                                         const Axis& ax, const Axis& ay) {
  std::vector<std::vector<Point>> segments(1);
  for (size_t i = 0; i < x.size(); ++i) {
    if (Finite(x[i]) && Finite(y[i])) {
      segments.back().push_back({ax.Map(x[i]), ay.Map(y[i])});
    } else if (!segments.back().empty()) {
      segments.emplace_back();
    }
  }
  if (segments.back().empty()) segments.pop_back();
  return segments;
}

std::string Points(const std::vector<Point>& points) {
  std::string s;
  for (const Point& p : points) absl::StrAppend(&s, s.empty() ? "" : " ", Num(p.x), ",", Num(p.y));
  return s;
}

struct Box {
  double x, y, w, h;
  bool Contains(Point p, double margin) const {
    return p.x >= x - margin && p.x <= x + w + margin && p.y >= y - margin && p.y <= y + h + margin;
  }
};

// How many samples along the lines (every ~3 px) fall into `box`.
int Hidden(const std::vector<std::vector<std::vector<Point>>>& lines, const Box& box) {
  int hidden = 0;
  for (const auto& series : lines) {
    for (const auto& segment : series) {
      for (size_t i = 0; i < segment.size(); ++i) {
        hidden += box.Contains(segment[i], 4);
        if (i == 0) continue;
        const Point a = segment[i - 1], b = segment[i];
        const int n = static_cast<int>(std::min(1000.0, std::hypot(b.x - a.x, b.y - a.y) / 3));
        for (int k = 1; k < n; ++k) {
          const double t = static_cast<double>(k) / n;
          hidden += box.Contains({a.x + t * (b.x - a.x), a.y + t * (b.y - a.y)}, 4);
        }
      }
    }
  }
  return hidden;
}

absl::Status CheckLinePlot(const LinePlot& plot, int width, int height) {
  const auto invalid = [&](absl::string_view m) { return Invalid("line plot", plot.title, m); };
  if (width < 200 || height < 150) {
    return invalid(absl::StrCat("size ", width, "x", height, " is below 200x150"));
  }
  if (plot.y_min && plot.y_max && !(*plot.y_min < *plot.y_max)) {
    return invalid(absl::StrCat("y_min ", *plot.y_min, " is not below y_max ", *plot.y_max));
  }
  for (const Series& s : plot.series) {
    const std::string name = absl::StrCat("series \"", s.name, "\": ");
    if (s.x.size() != s.y.size()) {
      return invalid(absl::StrCat(name, "x has ", s.x.size(), " values but y has ", s.y.size()));
    }
    const bool band = !s.y_low.empty() || !s.y_high.empty();
    if (band && (s.y_low.size() != s.y.size() || s.y_high.size() != s.y.size())) {
      return invalid(absl::StrCat(name, "y_low has ", s.y_low.size(), " and y_high ",
                                  s.y_high.size(), " values; need both empty or ", s.y.size()));
    }
    for (size_t i = 0; plot.log2_x && i < s.x.size(); ++i) {
      if (s.x[i] <= 0) {
        return invalid(
            absl::StrCat(name, "x[", i, "] = ", s.x[i], " is not positive on a log2 x axis"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<double> NiceTicks(double lo, double hi, int intervals_max) {
  if (!Finite(lo) || !Finite(hi) || lo > hi) return {};
  intervals_max = std::max(2, intervals_max);
  if (hi - lo <= 1e-12 * std::max({1.0, std::abs(lo), std::abs(hi)})) {
    const double d = lo != 0 ? 0.1 * std::abs(lo) : 1;
    lo -= d;
    hi += d;
  }
  const double mag = std::pow(10, std::floor(std::log10((hi - lo) / intervals_max)));
  constexpr double kMantissa[] = {1, 2, 5};
  double step = mag;
  double k_lo = 0, k_hi = 0;
  for (int i = 0; i < 30; ++i) {
    step = kMantissa[i % 3] * mag * std::pow(10, i / 3);
    k_lo = std::floor(lo / step + 1e-9);
    k_hi = std::ceil(hi / step - 1e-9);
    if (k_hi - k_lo <= intervals_max) break;
  }
  std::vector<double> ticks;
  for (double k = k_lo; k <= k_hi; ++k) ticks.push_back(k * step);
  return ticks;
}

std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

absl::StatusOr<std::string> RenderLinePlotSvg(const LinePlot& plot, int width, int height) {
  if (absl::Status s = CheckLinePlot(plot, width, height); !s.ok()) return s;
  constexpr double kInf = std::numeric_limits<double>::infinity();
  double x_lo = kInf, x_hi = -kInf, y_lo = kInf, y_hi = -kInf;
  const auto add = [&](double x, double y) {
    if (!Finite(x) || !Finite(y)) return;
    x_lo = std::min(x_lo, x), x_hi = std::max(x_hi, x);
    y_lo = std::min(y_lo, y), y_hi = std::max(y_hi, y);
  };
  for (const Series& s : plot.series) {
    for (size_t i = 0; i < s.x.size(); ++i) {
      add(s.x[i], s.y[i]);
      if (!s.y_low.empty() && Finite(s.y_low[i]) && Finite(s.y_high[i])) {
        add(s.x[i], s.y_low[i]);
        add(s.x[i], s.y_high[i]);
      }
    }
  }
  if (x_lo > x_hi) {
    std::string names;
    for (const Series& s : plot.series) absl::StrAppend(&names, names.empty() ? "" : ", ", s.name);
    return Invalid("line plot", plot.title,
                   absl::StrCat("no finite point in any series (", names, ")"));
  }

  // Margins: title on top, tick and axis labels left and below.
  const double top = plot.title.empty() ? 14 : 36;
  const double bottom = plot.x_label.empty() ? 28 : 46;
  const double frame_h = height - top - bottom;
  Axis ay = LinearAxis(y_lo, y_hi, plot.y_min, plot.y_max,
                       std::clamp(static_cast<int>(frame_h / 45), 2, 8));
  const double left = (plot.y_label.empty() ? 10 : 28) + ay.LabelWidthMax() + 8;
  double frame_w = width - left - 16;
  Axis ax = SpacedAxis(
      [&](int n) {
        return plot.log2_x ? Log2Axis(x_lo, x_hi, n)
                           : LinearAxis(x_lo, x_hi, std::nullopt, std::nullopt, n);
      },
      frame_w - 2 * kPad, std::clamp(static_cast<int>(frame_w / 60), 2, 10));
  const double right =
      std::max(16.0, TextWidth(ax.labels.empty() ? "" : ax.labels.back()) / 2 - kPad + 6);
  frame_w = width - left - right;
  ay.px_lo = top + frame_h - kPad;
  ay.px_hi = top + kPad;

  // Legend: inside the frame in the corner that hides the fewest line
  // samples, outside on the right when every corner hides some.
  double text_w = 0;
  bool named = false;
  for (const Series& s : plot.series) {
    text_w = std::max(text_w, TextWidth(s.name));
    named = named || !s.name.empty();
  }
  text_w = std::min(text_w, 0.25 * width);
  Box legend{0, 0, text_w + 48, 18.0 * plot.series.size() + 10};
  const auto place = [&](double frame_width) {
    ax.px_lo = left + kPad;
    ax.px_hi = left + frame_width - kPad;
    std::vector<std::vector<std::vector<Point>>> lines;
    for (const Series& s : plot.series) lines.push_back(Segments(s.x, s.y, ax, ay));
    return lines;
  };
  std::vector<std::vector<std::vector<Point>>> lines = place(frame_w);
  if (named) {
    const double xs[] = {left + frame_w - 6 - legend.w, left + 6};
    const double ys[] = {top + 6, top + frame_h - 6 - legend.h};
    int hidden_min = std::numeric_limits<int>::max();
    // matplotlib's "best" order: upper right, upper left, lower left, lower right.
    constexpr int kCorners[4][2] = {{0, 0}, {1, 0}, {1, 1}, {0, 1}};
    for (const auto& corner : kCorners) {
      const Box box{xs[corner[0]], ys[corner[1]], legend.w, legend.h};
      const int hidden = Hidden(lines, box);
      if (hidden < hidden_min) hidden_min = hidden, legend = box;
    }
    if (hidden_min > 0 && frame_w - legend.w - 12 >= 0.5 * frame_w) {
      frame_w -= legend.w + 12;
      lines = place(frame_w);
      legend.x = left + frame_w + 12;
      legend.y = top;
    }
  }

  std::string out;
  AppendSvgStart(out, width, height);
  absl::StrAppend(&out, "<defs><clipPath id=\"plot-area\"><rect x=\"", Num(left), "\" y=\"",
                  Num(top), "\" width=\"", Num(frame_w), "\" height=\"", Num(frame_h),
                  "\"/></clipPath></defs>\n");
  // Grid, ticks and tick labels.
  absl::StrAppend(&out, "<g stroke=\"#e5e5e5\" stroke-width=\"1\">\n");
  for (double t : ax.ticks) AppendLine(out, ax.Map(t), top, ax.Map(t), top + frame_h, "");
  for (double t : ay.ticks) AppendLine(out, left, ay.Map(t), left + frame_w, ay.Map(t), "");
  absl::StrAppend(&out, "</g>\n<g stroke=\"#000000\" stroke-width=\"1\">\n");
  for (double t : ax.ticks) {
    AppendLine(out, ax.Map(t), top + frame_h, ax.Map(t), top + frame_h + 4, "");
  }
  for (double t : ay.ticks) AppendLine(out, left - 4, ay.Map(t), left, ay.Map(t), "");
  absl::StrAppend(&out, "</g>\n");
  for (size_t i = 0; i < ax.ticks.size(); ++i) {
    AppendText(out, ax.Map(ax.ticks[i]), top + frame_h + 17, "middle", ax.labels[i]);
  }
  for (size_t i = 0; i < ay.ticks.size(); ++i) {
    AppendText(out, left - 7, ay.Map(ay.ticks[i]) + 4, "end", ay.labels[i]);
  }

  // Data: bands under lines under markers, clipped to the frame.
  absl::StrAppend(&out, "<g clip-path=\"url(#plot-area)\">\n");
  for (size_t k = 0; k < plot.series.size(); ++k) {
    const Series& s = plot.series[k];
    if (s.y_low.empty()) continue;
    const char* colour = kPalette[k % kPalette.size()];
    std::vector<double> x_band;  // NaN where the band breaks
    for (size_t i = 0; i < s.x.size(); ++i) {
      const bool ok = Finite(s.y_low[i]) && Finite(s.y_high[i]);
      x_band.push_back(ok ? s.x[i] : std::nan(""));
    }
    const auto lows = Segments(x_band, s.y_low, ax, ay);
    const auto highs = Segments(x_band, s.y_high, ax, ay);
    for (size_t j = 0; j < lows.size(); ++j) {
      if (lows[j].size() == 1) {
        AppendLine(out, lows[j][0].x, lows[j][0].y, highs[j][0].x, highs[j][0].y,
                   absl::StrCat("stroke=\"", colour, "\" stroke-width=\"1.5\""));
        continue;
      }
      std::vector<Point> polygon = highs[j];
      polygon.insert(polygon.end(), lows[j].rbegin(), lows[j].rend());
      absl::StrAppend(&out, "<polygon points=\"", Points(polygon), "\" fill=\"", colour,
                      "\" fill-opacity=\"0.2\" stroke=\"none\"/>\n");
    }
  }
  for (size_t k = 0; k < plot.series.size(); ++k) {
    const char* colour = kPalette[k % kPalette.size()];
    const char* dash = k < kPalette.size() ? "" : " stroke-dasharray=\"6 3\"";
    for (const std::vector<Point>& segment : lines[k]) {
      if (segment.size() < 2) continue;
      absl::StrAppend(&out, "<polyline points=\"", Points(segment), "\" fill=\"none\" stroke=\"",
                      colour, "\" stroke-width=\"2\" stroke-linejoin=\"round\"", dash, "/>\n");
    }
    for (const std::vector<Point>& segment : lines[k]) {
      if (!plot.markers && segment.size() > 1) continue;
      for (const Point& p : segment) {
        absl::StrAppend(&out, "<circle cx=\"", Num(p.x), "\" cy=\"", Num(p.y), "\" r=\"3\" fill=\"",
                        colour, "\"/>\n");
      }
    }
  }
  absl::StrAppend(&out, "</g>\n");

  // Frame, axis labels, title, legend.
  absl::StrAppend(&out, "<rect x=\"", Num(left), "\" y=\"", Num(top), "\" width=\"", Num(frame_w),
                  "\" height=\"", Num(frame_h), "\" fill=\"none\" stroke=\"#000000\"/>\n");
  if (!plot.x_label.empty()) {
    AppendText(out, left + frame_w / 2, height - 10, "middle", plot.x_label, frame_w);
  }
  if (!plot.y_label.empty()) {
    const double cy = top + frame_h / 2;
    AppendText(out, 16, cy, "middle", plot.y_label, frame_h, {},
               absl::StrCat("transform=\"rotate(-90 16 ", Num(cy), ")\""));
  }
  if (!plot.title.empty()) {
    AppendText(out, width / 2.0, 22, "middle", plot.title, width - 16, kTitle);
  }
  if (named) {
    absl::StrAppend(&out, "<g>\n<rect x=\"", Num(legend.x), "\" y=\"", Num(legend.y), "\" width=\"",
                    Num(legend.w), "\" height=\"", Num(legend.h),
                    "\" fill=\"#ffffff\" fill-opacity=\"0.85\" stroke=\"#bbbbbb\"/>\n");
    for (size_t k = 0; k < plot.series.size(); ++k) {
      const char* colour = kPalette[k % kPalette.size()];
      const double y = legend.y + 14 + 18.0 * k;
      AppendLine(out, legend.x + 8, y, legend.x + 32, y,
                 absl::StrCat("stroke=\"", colour, "\" stroke-width=\"2\"",
                              k < kPalette.size() ? "" : " stroke-dasharray=\"6 3\""));
      if (plot.markers) {
        absl::StrAppend(&out, "<circle cx=\"", Num(legend.x + 20), "\" cy=\"", Num(y),
                        "\" r=\"3\" fill=\"", colour, "\"/>\n");
      }
      AppendText(out, legend.x + 38, y + 4, "start", plot.series[k].name, text_w);
    }
    absl::StrAppend(&out, "</g>\n");
  }
  absl::StrAppend(&out, "</svg>\n");
  return out;
}

absl::StatusOr<std::string> RenderIntervalPlotSvg(const IntervalPlot& plot, int width,
                                                  int row_height) {
  const auto invalid = [&](absl::string_view m) { return Invalid("interval plot", plot.title, m); };
  if (width < 200 || row_height < 12) {
    return invalid(
        absl::StrCat("width ", width, " or row height ", row_height, " is below 200 or 12"));
  }
  if (plot.panels.empty() || plot.panels.size() != plot.rows_per_panel.size()) {
    return invalid(absl::StrCat(plot.panels.size(), " panels but ", plot.rows_per_panel.size(),
                                " lists of rows; need the same number, at least one"));
  }
  const std::vector<IntervalRow>& first = plot.rows_per_panel[0];
  if (first.empty()) return invalid("no methods");
  for (size_t p = 0; p < plot.panels.size(); ++p) {
    const std::vector<IntervalRow>& rows = plot.rows_per_panel[p];
    const std::string panel = absl::StrCat("panel \"", plot.panels[p], "\"");
    if (rows.size() != first.size()) {
      return invalid(absl::StrCat(panel, " has ", rows.size(), " methods but panel \"",
                                  plot.panels[0], "\" has ", first.size()));
    }
    for (size_t i = 0; i < rows.size(); ++i) {
      const IntervalRow& r = rows[i];
      const std::string method = absl::StrCat(panel, ", method \"", r.label, "\": ");
      if (r.label != first[i].label) {
        return invalid(absl::StrCat(method, "row ", i, " is \"", first[i].label, "\" in panel \"",
                                    plot.panels[0], "\""));
      }
      if (!Finite(r.estimate) || !Finite(r.low) || !Finite(r.high)) {
        return invalid(absl::StrCat(method, "estimate, low and high must be finite"));
      }
      const double eps = 1e-9 * std::max({1.0, std::abs(r.low), std::abs(r.high)});
      if (r.low > r.estimate + eps || r.estimate > r.high + eps) {
        return invalid(absl::StrCat(method, "need low <= estimate <= high, got ", r.low, ", ",
                                    r.estimate, ", ", r.high));
      }
    }
  }

  const size_t n = first.size(), panels = plot.panels.size();
  double label_w = 0;
  for (const IntervalRow& r : first) label_w = std::max(label_w, TextWidth(r.label));
  label_w = std::min(label_w, 0.3 * width);
  const double left = label_w + 18, right = 14, gap = 20;
  const double panel_w = (width - left - right - gap * (panels - 1)) / panels;
  if (panel_w < 40) return invalid(absl::StrCat(panels, " panels do not fit in width ", width));
  const double rows_top = plot.title.empty() ? 30 : 52;
  const double rows_bottom = rows_top + static_cast<double>(n * row_height);
  const int height = static_cast<int>(rows_bottom + (plot.x_label.empty() ? 28 : 48));

  std::string out;
  AppendSvgStart(out, width, height);
  if (!plot.title.empty()) {
    AppendText(out, width / 2.0, 22, "middle", plot.title, width - 16, kTitle);
  }
  for (size_t i = 0; i < n; ++i) {
    AppendText(out, left - 10, rows_top + (i + 0.5) * row_height + 4, "end", first[i].label,
               label_w);
  }
  for (size_t p = 0; p < panels; ++p) {
    const std::vector<IntervalRow>& rows = plot.rows_per_panel[p];
    double lo = rows[0].low, hi = rows[0].high;
    for (const IntervalRow& r : rows) lo = std::min(lo, r.low), hi = std::max(hi, r.high);
    const double x0 = left + p * (panel_w + gap);
    Axis ax = SpacedAxis([&](int n) { return LinearAxis(lo, hi, std::nullopt, std::nullopt, n); },
                         panel_w - 12, std::clamp(static_cast<int>(panel_w / 50), 2, 5));
    // Room for half a tick label at either end; neighbours share the gap.
    const double pad = std::max(6.0, ax.LabelWidthMax() / 2 - 7);
    ax.px_lo = x0 + pad;
    ax.px_hi = x0 + panel_w - pad;
    absl::StrAppend(&out, "<g>\n");
    AppendText(out, x0 + panel_w / 2, rows_top - 10, "middle", plot.panels[p], panel_w,
               kPanelTitle);
    for (size_t k = 0; k < ax.ticks.size(); ++k) {
      const double x = ax.Map(ax.ticks[k]);
      AppendLine(out, x, rows_top, x, rows_bottom, "stroke=\"#e5e5e5\"");
      AppendLine(out, x, rows_bottom, x, rows_bottom + 4, "stroke=\"#000000\"");
      AppendText(out, x, rows_bottom + 17, "middle", ax.labels[k]);
    }
    AppendLine(out, x0, rows_bottom, x0 + panel_w, rows_bottom, "stroke=\"#000000\"");
    for (size_t i = 0; i < n; ++i) {
      const IntervalRow& r = rows[i];
      const double cy = rows_top + (i + 0.5) * row_height, bar_h = 0.6 * row_height;
      const double x_lo = ax.Map(r.low), w = std::max(1.0, ax.Map(r.high) - x_lo);
      absl::StrAppend(&out, "<rect x=\"", Num(x_lo), "\" y=\"", Num(cy - bar_h / 2), "\" width=\"",
                      Num(w), "\" height=\"", Num(bar_h), "\" fill=\"",
                      kPalette[i % kPalette.size()], "\" fill-opacity=\"0.75\"/>\n");
      AppendLine(out, ax.Map(r.estimate), cy - bar_h / 2 - 1, ax.Map(r.estimate),
                 cy + bar_h / 2 + 1, "stroke=\"#000000\" stroke-width=\"2\"");
    }
    absl::StrAppend(&out, "</g>\n");
  }
  if (!plot.x_label.empty()) {
    AppendText(out, left + (width - left - right) / 2, height - 10, "middle", plot.x_label,
               width - left - right);
  }
  absl::StrAppend(&out, "</svg>\n");
  return out;
}

std::string MarkdownTable(const std::vector<std::string>& header,
                          const std::vector<std::vector<std::string>>& rows) {
  size_t columns = header.size();
  for (const auto& row : rows) columns = std::max(columns, row.size());
  if (columns == 0) return "";
  const auto line = [columns](const std::vector<std::string>& cells) {
    std::string s = "|";
    for (size_t c = 0; c < columns; ++c) {
      std::string cell;
      for (char ch : c < cells.size() ? cells[c] : std::string()) {
        if (ch == '|') {
          cell += "\\|";
        } else if (ch == '\n' || ch == '\r') {
          cell += ' ';
        } else {
          cell += ch;
        }
      }
      absl::StrAppend(&s, cell.empty() ? "" : " ", cell, " |");
    }
    return s + "\n";
  };
  std::string out = line(header) + "|";
  for (size_t c = 0; c < columns; ++c) out += " --- |";
  out += "\n";
  for (const auto& row : rows) out += line(row);
  return out;
}

std::string FormatEstimate(double estimate, double low, double high, int digits) {
  if (!Finite(estimate)) return "n/a";
  if (!Finite(low) || !Finite(high)) return Fixed(estimate, digits);
  return absl::StrCat(Fixed(estimate, digits), " [", Fixed(low, digits), ", ", Fixed(high, digits),
                      "]");
}

std::string FormatMeanStd(const std::vector<double>& x) {
  if (x.empty()) return "n/a";
  return absl::StrFormat("%.3f ± %.3f", Mean(x), StdDev(x));
}

}  // namespace bpo::eval
