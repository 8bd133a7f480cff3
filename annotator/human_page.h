// The rater's single page: HTML, CSS and JS in one document with no external
// resources, served at / by HumanAnnotationService. It drives the JSON API in
// human_service.h. For tests and tools the page reports where it is on
// <body>: data-state (login, rating, waiting), data-labelled (the rater's
// count) and data-pair (the pair_id on screen).
#ifndef BPO_ANNOTATOR_HUMAN_PAGE_H_
#define BPO_ANNOTATOR_HUMAN_PAGE_H_

#include "absl/strings/string_view.h"

namespace bpo::annotator {

absl::string_view HumanPageHtml();

}  // namespace bpo::annotator

#endif  // BPO_ANNOTATOR_HUMAN_PAGE_H_
