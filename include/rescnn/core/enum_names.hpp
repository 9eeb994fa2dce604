// rescnn/core/enum_names.hpp — reading an option's value by name, as the
// environment variables and flags give it (RESCNN_MAX_CPU_ISA=AVX2,
// --precision bf16).
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <string>
#include <string_view>

#include "rescnn/core/error.hpp"

namespace rescnn::detail {

// The enumerator of `values` whose name_of() is `text`, in any case; any
// other text is a ValueError naming `what`, the text and the accepted names.
template <class E, std::size_t N, class NameOf>
E parse_enum_name(std::string_view text, const E (&values)[N], NameOf name_of, std::string_view what) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const E v : values)
    if (lower == name_of(v)) return v;
  std::string accepted;
  for (std::size_t i = 0; i < N; ++i) accepted += std::string(i ? ", " : "") + name_of(values[i]);
  fail(what, ": unknown value '", text, "'; expected one of ", accepted, " (any case)");
}

}  // namespace rescnn::detail
