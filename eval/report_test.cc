#include "eval/report.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bpo::eval {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const double kNan = std::nan("");

int Count(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// "" when `xml` is one well-formed element: every opened element closed and
// properly nested, attribute values quoted, '&' only in the five entities.
std::string XmlError(const std::string& xml) {
  std::vector<std::string> open;
  int roots = 0;
  for (size_t i = 0; i < xml.size(); ++i) {
    if (xml[i] == '&') {
      const std::string rest = xml.substr(i, 6);
      bool entity = false;
      for (const char* e : {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"}) {
        entity = entity || rest.rfind(e, 0) == 0;
      }
      if (!entity) return "raw & at " + std::to_string(i);
    }
    if (xml[i] == '>') return "raw > at " + std::to_string(i);
    if (xml[i] != '<') continue;
    const bool closing = xml[i + 1] == '/';
    size_t j = i + (closing ? 2 : 1);
    const size_t name_start = j;
    while (j < xml.size() &&
           (std::isalnum(static_cast<unsigned char>(xml[j])) || xml[j] == '-' || xml[j] == ':')) {
      ++j;
    }
    const std::string name = xml.substr(name_start, j - name_start);
    if (name.empty()) return "bad tag at " + std::to_string(i);
    char quote = 0;
    for (; j < xml.size() && (quote || xml[j] != '>'); ++j) {
      if (quote && xml[j] == quote) {
        quote = 0;
      } else if (!quote && (xml[j] == '"' || xml[j] == '\'')) {
        quote = xml[j];
      } else if (quote && xml[j] == '<') {
        return "raw < in attribute at " + std::to_string(j);
      } else if (!quote && xml[j] == '=' && j + 1 < xml.size() && xml[j + 1] != '"') {
        return "unquoted attribute at " + std::to_string(j);
      }
    }
    if (j >= xml.size()) return "unterminated tag " + name;
    if (closing) {
      if (open.empty() || open.back() != name) return "</" + name + "> closes nothing open";
      open.pop_back();
    } else if (xml[j - 1] != '/') {
      if (open.empty()) ++roots;
      open.push_back(name);
    } else if (open.empty()) {
      ++roots;
    }
    i = j;
  }
  if (!open.empty()) return "<" + open.back() + "> never closed";
  if (roots != 1) return std::to_string(roots) + " root elements";
  return "";
}

// The x (or y) coordinates of every <polyline>, one vector per polyline.
std::vector<std::vector<double>> PolylineCoordinates(const std::string& svg, int axis) {
  std::vector<std::vector<double>> lines;
  const std::regex polyline("<polyline points=\"([^\"]*)\"");
  for (std::sregex_iterator it(svg.begin(), svg.end(), polyline), end; it != end; ++it) {
    lines.emplace_back();
    std::stringstream points((*it)[1].str());
    std::string point;
    while (points >> point) {
      const size_t comma = point.find(',');
      lines.back().push_back(
          std::stod(axis == 0 ? point.substr(0, comma) : point.substr(comma + 1)));
    }
  }
  return lines;
}

LinePlot WinRateVsF() {
  LinePlot plot;
  plot.title = "Win rate vs annotation frequency";
  plot.x_label = "F (annotations per T steps)";
  plot.y_label = "win rate";
  plot.log2_x = true;
  plot.y_min = 0;
  plot.y_max = 1;
  plot.series = {
      {"BPO",
       {1, 2, 4, 8, 16, 32},
       {0.61, 0.66, 0.70, 0.72, 0.725, 0.73},
       {0.57, 0.62, 0.665, 0.69, 0.70, 0.70},
       {0.65, 0.70, 0.735, 0.75, 0.75, 0.76}},
      {"online DPO",
       {1, 2, 4, 8, 16, 32},
       {0.48, 0.55, 0.60, 0.63, 0.64, 0.645},
       {0.44, 0.51, 0.565, 0.60, 0.61, 0.615},
       {0.52, 0.59, 0.635, 0.66, 0.67, 0.675}},
      {"offline DPO", {1, 32}, {0.41, 0.41}, {}, {}},
  };
  return plot;
}

IntervalPlot Aggregates() {
  IntervalPlot plot;
  plot.title = "Aggregate win rate over tasks x seeds (95% stratified bootstrap CIs)";
  plot.x_label = "win rate against the reference";
  plot.panels = {"Median", "IQM", "Mean"};
  const std::vector<std::string> methods = {"offline DPO", "online DPO", "BPO (ours)", "A&B <x>"};
  for (int p = 0; p < 3; ++p) {
    plot.rows_per_panel.emplace_back();
    for (int i = 0; i < 4; ++i) {
      const double e = 0.4 + 0.08 * i + 0.01 * p;
      plot.rows_per_panel.back().push_back({methods[i], e, e - 0.03 - 0.01 * p, e + 0.04});
    }
  }
  return plot;
}

TEST(ReportTest, NiceTicksAreOneTwoFiveStepsCoveringTheRange) {
  EXPECT_THAT(NiceTicks(0, 1, 5),
              ::testing::Pointwise(::testing::DoubleNear(1e-12),
                                   std::vector<double>{0, 0.2, 0.4, 0.6, 0.8, 1}));
  EXPECT_THAT(NiceTicks(0.37, 0.83, 5),
              ::testing::Pointwise(::testing::DoubleNear(1e-12),
                                   std::vector<double>{0.2, 0.4, 0.6, 0.8, 1.0}));
  const std::vector<std::pair<double, double>> ranges = {
      {0.37, 0.83}, {-3.2, 17.5}, {1234, 5678}, {5, 5}, {1e-5, 3e-5}, {-0.001, 0.002}, {0, 1e6}};
  for (const auto& [lo, hi] : ranges) {
    for (int intervals_max : {2, 4, 8}) {
      SCOPED_TRACE(testing::Message() << lo << ".." << hi << " max " << intervals_max);
      const std::vector<double> t = NiceTicks(lo, hi, intervals_max);
      ASSERT_GE(t.size(), 2u);
      EXPECT_LE(t.size() - 1, static_cast<size_t>(intervals_max));
      const double step = t[1] - t[0];
      const double tol = 1e-9 * step;
      EXPECT_LE(t.front(), lo + tol);
      EXPECT_GE(t.back(), hi - tol);
      const double mantissa = step / std::pow(10, std::floor(std::log10(step) + 1e-9));
      EXPECT_TRUE(std::abs(mantissa - 1) < 1e-6 || std::abs(mantissa - 2) < 1e-6 ||
                  std::abs(mantissa - 5) < 1e-6)
          << "step " << step;
      for (size_t i = 1; i < t.size(); ++i) EXPECT_NEAR(t[i] - t[i - 1], step, tol);
      for (double v : t) EXPECT_NEAR(v / step, std::round(v / step), 1e-6);
    }
  }
  EXPECT_TRUE(NiceTicks(kNan, 1).empty());
  EXPECT_TRUE(NiceTicks(2, 1).empty());
}

TEST(ReportTest, Log2AxisSpacesPowersOfTwoEqually) {
  LinePlot plot;
  plot.series = {{"F", {1, 2, 4, 8}, {0.1, 0.2, 0.3, 0.4}, {}, {}}};
  plot.log2_x = true;
  const absl::StatusOr<std::string> log = RenderLinePlotSvg(plot);
  ASSERT_TRUE(log.ok()) << log.status();
  std::vector<std::vector<double>> x = PolylineCoordinates(*log, 0);
  ASSERT_EQ(x.size(), 1u);
  ASSERT_EQ(x[0].size(), 4u);
  const double d = x[0][1] - x[0][0];
  EXPECT_GT(d, 50);
  EXPECT_NEAR(x[0][2] - x[0][1], d, 0.02);
  EXPECT_NEAR(x[0][3] - x[0][2], d, 0.02);
  for (const char* label : {">1</text>", ">2</text>", ">4</text>", ">8</text>"}) {
    EXPECT_THAT(*log, HasSubstr(label));
  }
  // On a linear axis the same points are not equally spaced.
  plot.log2_x = false;
  const absl::StatusOr<std::string> linear = RenderLinePlotSvg(plot);
  ASSERT_TRUE(linear.ok()) << linear.status();
  x = PolylineCoordinates(*linear, 0);
  EXPECT_NEAR(x[0][2] - x[0][1], 2 * (x[0][1] - x[0][0]), 0.02);
}

TEST(ReportTest, LinePlotIsWellFormedDeterministicSvgWithOneLinePerSeriesAndALegend) {
  const LinePlot plot = WinRateVsF();
  const absl::StatusOr<std::string> svg = RenderLinePlotSvg(plot);
  ASSERT_TRUE(svg.ok()) << svg.status();
  EXPECT_EQ(svg->rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_EQ(svg->substr(svg->size() - 7), "</svg>\n");
  EXPECT_EQ(XmlError(*svg), "");
  EXPECT_EQ(Count(*svg, "<polyline"), 3);
  EXPECT_EQ(Count(*svg, "<polygon"), 2);  // the two bands
  for (const Series& s : plot.series) EXPECT_THAT(*svg, HasSubstr(">" + s.name + "</text>"));
  EXPECT_THAT(*svg, HasSubstr(">" + plot.title + "</text>"));
  EXPECT_THAT(*svg, HasSubstr(">win rate</text>"));
  EXPECT_THAT(*svg, HasSubstr("#0072B2"));  // Okabe-Ito, first colour
  // No external resources, at most 2 decimals in attributes.
  EXPECT_THAT(*svg, Not(HasSubstr("href")));
  EXPECT_THAT(*svg, Not(HasSubstr("<script")));
  EXPECT_FALSE(std::regex_search(*svg, std::regex("=\"[^\"]*[0-9]\\.[0-9]{3}")));
  const absl::StatusOr<std::string> again = RenderLinePlotSvg(plot);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*svg, *again);
}

TEST(ReportTest, NonFinitePointsBreakTheLine) {
  LinePlot plot;
  plot.markers = false;
  plot.series = {{"split", {1, 2, 3, 4, 5}, {1, 2, kNan, 3, 4}, {}, {}},
                 {"lone", {1, 2, 3, 4}, {1, std::numeric_limits<double>::infinity(), 3, 4}, {}, {}},
                 {"nan x", {1, kNan, 3}, {2, 2, 2}, {}, {}}};
  const absl::StatusOr<std::string> svg = RenderLinePlotSvg(plot);
  ASSERT_TRUE(svg.ok()) << svg.status();
  EXPECT_EQ(XmlError(*svg), "");
  // split: 2 segments; lone: 1 segment and a lone point; nan x: 2 lone points.
  EXPECT_EQ(Count(*svg, "<polyline"), 3);
  EXPECT_EQ(Count(*svg, "<circle"), 3);
  for (const auto& line : PolylineCoordinates(*svg, 1)) EXPECT_EQ(line.size(), 2u);
}

TEST(ReportTest, BandOfOnePointIsAnErrorBar) {
  LinePlot plot;
  plot.series = {{"s", {1, 2, 3, 4}, {1, 2, 3, 4}, {0.5, 1.5, kNan, 3.5}, {1.5, 2.5, 3.5, 4.5}}};
  const absl::StatusOr<std::string> svg = RenderLinePlotSvg(plot);
  ASSERT_TRUE(svg.ok()) << svg.status();
  EXPECT_EQ(Count(*svg, "<polygon"), 1);
  EXPECT_EQ(Count(*svg, "stroke-width=\"1.5\""), 1);
}

TEST(ReportTest, TextIsXmlEscaped) {
  LinePlot plot;
  plot.title = "it's <b>";
  plot.series = {{"a<b&\"c\"", {0, 1}, {0, 1}, {}, {}}};
  const absl::StatusOr<std::string> svg = RenderLinePlotSvg(plot);
  ASSERT_TRUE(svg.ok()) << svg.status();
  EXPECT_EQ(XmlError(*svg), "");
  EXPECT_THAT(*svg, HasSubstr("a&lt;b&amp;&quot;c&quot;"));
  EXPECT_THAT(*svg, Not(HasSubstr("a<b")));
  EXPECT_THAT(*svg, HasSubstr("it&apos;s &lt;b&gt;"));
  EXPECT_EQ(XmlEscape("<&>\"'x"), "&lt;&amp;&gt;&quot;&apos;x");
}

void ExpectInvalid(const absl::StatusOr<std::string>& svg, const std::string& in_message) {
  EXPECT_EQ(svg.status().code(), absl::StatusCode::kInvalidArgument) << svg.status();
  EXPECT_THAT(std::string(svg.status().message()), HasSubstr(in_message));
}

TEST(ReportTest, LinePlotErrorsNameTheSeries) {
  LinePlot plot;
  plot.series = {{"ok", {1, 2}, {1, 2}, {}, {}}, {"short y", {1, 2, 3}, {1, 2}, {}, {}}};
  ExpectInvalid(RenderLinePlotSvg(plot), "series \"short y\": x has 3 values but y has 2");
  plot.series[1] = {"band", {1, 2}, {1, 2}, {0, 1}, {}};
  ExpectInvalid(RenderLinePlotSvg(plot), "series \"band\": y_low has 2 and y_high 0");
  plot.series[1] = {"zero F", {0, 2}, {1, 2}, {}, {}};
  EXPECT_TRUE(RenderLinePlotSvg(plot).ok());
  plot.log2_x = true;
  ExpectInvalid(RenderLinePlotSvg(plot), "series \"zero F\": x[0] = 0 is not positive");
  plot.series = {{"all nan", {1, 2}, {kNan, kNan}, {}, {}}};
  ExpectInvalid(RenderLinePlotSvg(plot), "no finite point in any series (all nan)");
  plot.series = {{"ok", {1, 2}, {1, 2}, {}, {}}};
  plot.y_min = 1;
  plot.y_max = 1;
  ExpectInvalid(RenderLinePlotSvg(plot), "y_min 1 is not below y_max 1");
  plot.y_max.reset();
  EXPECT_TRUE(RenderLinePlotSvg(plot).ok());
  ExpectInvalid(RenderLinePlotSvg(plot, 100, 100), "size 100x100");
}

TEST(ReportTest, IntervalPlotHasOneBarPerPanelAndMethod) {
  const IntervalPlot plot = Aggregates();
  const absl::StatusOr<std::string> svg = RenderIntervalPlotSvg(plot);
  ASSERT_TRUE(svg.ok()) << svg.status();
  EXPECT_EQ(svg->rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_EQ(svg->substr(svg->size() - 7), "</svg>\n");
  EXPECT_EQ(XmlError(*svg), "");
  EXPECT_EQ(Count(*svg, "<rect"), 1 + 3 * 4);  // the background and the bars
  for (const std::string& panel : plot.panels) EXPECT_THAT(*svg, HasSubstr(">" + panel + "<"));
  EXPECT_THAT(*svg, HasSubstr(">A&amp;B &lt;x&gt;</text>"));
  EXPECT_THAT(*svg, Not(HasSubstr("A&B")));
  EXPECT_FALSE(std::regex_search(*svg, std::regex("=\"[^\"]*[0-9]\\.[0-9]{3}")));
  EXPECT_EQ(*svg, *RenderIntervalPlotSvg(plot));
}

TEST(ReportTest, IntervalPlotRejectsMismatchedOrDisorderedInputs) {
  IntervalPlot plot = Aggregates();
  plot.panels.pop_back();
  ExpectInvalid(RenderIntervalPlotSvg(plot), "2 panels but 3 lists of rows");
  plot = Aggregates();
  plot.rows_per_panel[2].pop_back();
  ExpectInvalid(RenderIntervalPlotSvg(plot), "panel \"Mean\" has 3 methods but panel \"Median\"");
  plot = Aggregates();
  plot.rows_per_panel[1][0].label = "other";
  ExpectInvalid(RenderIntervalPlotSvg(plot), "method \"other\": row 0 is \"offline DPO\"");
  plot = Aggregates();
  plot.rows_per_panel[1][2] = {"BPO (ours)", 0.5, 0.6, 0.7};
  ExpectInvalid(RenderIntervalPlotSvg(plot),
                "panel \"IQM\", method \"BPO (ours)\": need low <= estimate <= high");
  plot.rows_per_panel[1][2] = {"BPO (ours)", 0.8, 0.6, 0.7};
  ExpectInvalid(RenderIntervalPlotSvg(plot), "need low <= estimate <= high");
  plot.rows_per_panel[1][2] = {"BPO (ours)", kNan, 0.6, 0.7};
  ExpectInvalid(RenderIntervalPlotSvg(plot), "must be finite");
  // Equality and rounding noise are fine.
  plot.rows_per_panel[1][2] = {"BPO (ours)", 0.7 + 1e-12, 0.7, 0.7};
  EXPECT_TRUE(RenderIntervalPlotSvg(plot).ok());
  plot.panels.clear();
  plot.rows_per_panel.clear();
  ExpectInvalid(RenderIntervalPlotSvg(plot), "0 panels");
}

TEST(ReportTest, MarkdownTableEscapesPipesAndPadsRows) {
  EXPECT_EQ(MarkdownTable({"method", "win|rate"}, {{"BPO"}, {"a|b", "0.5", "extra"}}),
            "| method | win\\|rate | |\n"
            "| --- | --- | --- |\n"
            "| BPO | | |\n"
            "| a\\|b | 0.5 | extra |\n");
  EXPECT_EQ(MarkdownTable({"x"}, {{"two\nlines"}}), "| x |\n| --- |\n| two lines |\n");
  EXPECT_EQ(MarkdownTable({}, {}), "");
}

TEST(ReportTest, FormatEstimate) {
  EXPECT_EQ(FormatEstimate(0.4123, 0.38, 0.4471), "0.412 [0.380, 0.447]");
  EXPECT_EQ(FormatEstimate(0.4123, 0.38, 0.4471, 1), "0.4 [0.4, 0.4]");
  EXPECT_EQ(FormatEstimate(-0.0001, -0.01, 0.02), "0.000 [-0.010, 0.020]");
  EXPECT_EQ(FormatEstimate(12.5, kNan, 13), "12.500");
  EXPECT_EQ(FormatEstimate(kNan, 0, 1), "n/a");
}

// Writes example plots for a visual check when BPO_REPORT_EXAMPLES_DIR is set:
//   BPO_REPORT_EXAMPLES_DIR=/tmp eval_report_test
TEST(ReportTest, WritesExamples) {
  const char* dir = std::getenv("BPO_REPORT_EXAMPLES_DIR");
  if (dir == nullptr) GTEST_SKIP() << "BPO_REPORT_EXAMPLES_DIR is not set";
  LinePlot curves;
  curves.title = "Training curves";
  curves.x_label = "step";
  curves.y_label = "KL(policy || reference)";
  for (int k = 0; k < 4; ++k) {
    Series s{"run " + std::to_string(k), {}, {}, {}, {}};
    for (int i = 0; i <= 40; ++i) {
      s.x.push_back(25.0 * i);
      s.y.push_back(i == 17 && k == 1 ? kNan
                                      : (0.5 + 0.3 * k) * std::log1p(i) + 0.05 * std::sin(i));
    }
    curves.series.push_back(s);
  }
  const std::vector<std::pair<std::string, absl::StatusOr<std::string>>> examples = {
      {"line", RenderLinePlotSvg(WinRateVsF())},
      {"curves", RenderLinePlotSvg(curves)},
      {"interval", RenderIntervalPlotSvg(Aggregates())}};
  for (const auto& [name, svg] : examples) {
    ASSERT_TRUE(svg.ok()) << svg.status();
    std::ofstream(std::string(dir) + "/report-example-" + name + ".svg") << *svg;
  }
}

}  // namespace
}  // namespace bpo::eval
