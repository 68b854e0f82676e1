// The seed documents' driver fragments (seed_fragments.cpp), each returning true when it behaved.
#pragma once

namespace kmbench::testing {
bool seed000_init_without_params();
bool seed000_init_with_dictionary();
bool seed000_with_physical_address();
bool seed002_dma_types_named();
}  // namespace kmbench::testing
