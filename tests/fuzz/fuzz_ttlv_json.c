/*
 * tests/fuzz/fuzz_ttlv_json.c: libFuzzer target for the JSON message
 * encoding (ttlv_from_json / ttlv_to_json), with the checks of
 * fuzz_ttlv_form.h: JSON in, then JSON, XML and TTLV round trips.
 */
#include "tests/fuzz/fuzz_ttlv_form.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_form_one(&fuzz_json, &fuzz_xml, data, size);
    return 0;
}
