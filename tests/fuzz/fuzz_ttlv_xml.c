/*
 * tests/fuzz/fuzz_ttlv_xml.c: libFuzzer target for the XML message encoding
 * (ttlv_from_xml / ttlv_to_xml, libexpat), with the checks of
 * fuzz_ttlv_form.h: XML in, then XML, JSON and TTLV round trips.
 */
#include "tests/fuzz/fuzz_ttlv_form.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_form_one(&fuzz_xml, &fuzz_json, data, size);
    return 0;
}
