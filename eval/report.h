// Building blocks of the Markdown report that `bpo reproduce` writes: SVG line
// plots (win rate vs annotation frequency F, training curves of loss, margin,
// KL and win rate), interval plots of aggregate estimates with confidence
// intervals (one panel per estimator, as rliable's plot_interval_estimates),
// Markdown tables and "estimate [low, high]" cells (the paper's Table 1).
//
// The SVGs are self-contained SVG 1.1 (no scripts, external fonts or style
// sheets; generic "sans-serif" font), XML-escape all caller text, write
// coordinates with at most 2 decimals and are deterministic: the same input
// gives a byte-identical string. Numbers are formatted independently of the C
// locale. All functions are pure and thread-safe.
#ifndef BPO_EVAL_REPORT_H_
#define BPO_EVAL_REPORT_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace bpo::eval {

// One curve of a LinePlot. Points whose x or y is NaN or infinite are
// skipped and break the line into segments.
struct Series {
  std::string name;          // the legend entry
  std::vector<double> x, y;  // [n] each
  // Optional error band: both empty, or both [n]. Drawn as a translucent
  // polygon per contiguous run of finite (x, y_low, y_high); a run of a single
  // point is drawn as a vertical error bar instead.
  std::vector<double> y_low, y_high;
};

struct LinePlot {
  std::string title, x_label, y_label;
  std::vector<Series> series;  // coloured in order from the Okabe-Ito palette
  // Equal spacing for powers of two (F = 1, 2, 4, ..., T); every x must then be
  // positive. Ticks sit at powers of two.
  bool log2_x = false;
  // Fixed y-axis bounds; an unset bound extends to a nice tick past the data.
  std::optional<double> y_min, y_max;
  bool markers = true;  // a circle at every finite point
};

// Renders `plot` as an SVG of width x height pixels: framed axes with nice
// ticks (1-2-5 steps, or powers of two on a log2 x axis), grid lines, tick and
// axis labels, the title and a legend (inside the plot area in the corner
// that hides the fewest data, or right of it when every corner would hide
// some and the plot keeps half its width; unless no series is named). Text
// too long for its place is cut with an ellipsis, the full text kept in a
// <title>. Each contiguous segment of >= 2 finite points is one <polyline>; a
// lone point is drawn as a circle even when `markers` is false. Series 9+
// reuse the palette with dashed lines.
// INVALID_ARGUMENT, naming the series: x and y of different sizes, y_low or
// y_high neither empty nor of y's size, x <= 0 with log2_x; also y_min >=
// y_max, no finite point in any series, width < 200 or height < 150.
absl::StatusOr<std::string> RenderLinePlotSvg(const LinePlot& plot, int width = 640,
                                              int height = 400);

// One method's row in one panel of an IntervalPlot: low <= estimate <= high.
struct IntervalRow {
  std::string label;  // the method
  double estimate = 0, low = 0, high = 0;
};

struct IntervalPlot {
  std::string title, x_label;       // x_label is centred under all panels
  std::vector<std::string> panels;  // the estimators, e.g. "Median", "IQM", "Mean"
  // [panels][methods], panel-major: rows_per_panel[p][i] is method i in panel
  // p. Every panel lists the same methods in the same order.
  std::vector<std::vector<IntervalRow>> rows_per_panel;
};

// Renders `plot` like rliable's plot_interval_estimates: the panels side by
// side, each with its own x axis and nice ticks; one row of height
// `row_height` per method with a horizontal <rect> from low to high (one rect
// per panel and method, coloured per method) and a black tick at the
// estimate; method labels left of the first panel. The SVG is `width` wide
// and as tall as the rows need.
// INVALID_ARGUMENT: no panels, panels and rows_per_panel of different sizes,
// a panel with another method count or labels than the first (naming both),
// a non-finite value or low <= estimate <= high violated beyond 1e-9 relative
// (naming panel and method), width < 200 or row_height < 12.
absl::StatusOr<std::string> RenderIntervalPlotSvg(const IntervalPlot& plot, int width = 720,
                                                  int row_height = 28);

// A GitHub-flavoured Markdown table, one line per row, each ending in '\n'.
// '|' in cells is escaped as "\|" and newlines become spaces. The table is as
// wide as its widest row (header included); shorter rows and the header are
// padded with empty cells. Empty header and rows give "".
std::string MarkdownTable(const std::vector<std::string>& header,
                          const std::vector<std::vector<std::string>>& rows);

// "0.412 [0.380, 0.447]" with `digits` decimals; just the estimate when low or
// high is not finite, "n/a" when the estimate is not finite.
std::string FormatEstimate(double estimate, double low, double high, int digits = 3);

// "0.412 ± 0.031": the mean and sample standard deviation of `x` with 3
// decimals (printf's %.3f); "n/a" for no values.
std::string FormatMeanStd(const std::vector<double>& x);

// Exposed for tests and for callers that lay out their own plots.

// Ascending ticks at multiples of a 1-2-5 step (1, 2 or 5 times a power of
// ten) with at most max(2, intervals_max) intervals, the first <= lo and the
// last >= hi. A degenerate range (lo == hi) is widened first; empty if lo or
// hi is not finite or lo > hi.
std::vector<double> NiceTicks(double lo, double hi, int intervals_max = 5);

// `text` with &, <, >, " and ' replaced by XML entities.
std::string XmlEscape(std::string_view text);

}  // namespace bpo::eval

#endif  // BPO_EVAL_REPORT_H_
