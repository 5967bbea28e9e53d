/* tests/unit/test_ttlv_forms.c: the JSON and XML message encodings
 * (ttlv_from_json/ttlv_to_json, ttlv_from_xml/ttlv_to_xml).
 *  - golden messages from the KMIP documents decode to the TTLV the same
 *    message has in the test-case document's printed form (an independent
 *    reader, ttlv_parse_text, is the oracle);
 *  - every value type's exact text on output, and its accepted spellings on
 *    input, against literal expectations;
 *  - name normalization: the Profiles' examples, and every tag, enumeration
 *    value and mask bit of the tables surviving JSON and XML;
 *  - rejections with their codes, offsets and messages: syntax, bad names,
 *    out-of-range numbers, bad hex and dates, DOCTYPE, depth, item and size
 *    limits, text XML cannot carry.
 * The 520 test-case vectors' round trips are in test_ttlv_vectors.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ttlv/ttlv.h"

static kms_arena_t *arena;

static int setup(void **state)
{
    (void)state;
    arena = kms_arena_new(0);
    return arena ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    kms_arena_free(arena);
    return 0;
}

/* The TTLV bytes of a message given in the printed form. */
static void printed_bytes(const char *printed, kms_buf_t *out)
{
    ttlv_item_t *root;
    kms_error_t err;
    int rc = ttlv_parse_text(printed, strlen(printed), arena, &root, &err);
    if (rc)
        fail_msg("oracle text: %s", kms_error_msg(&err));
    kms_buf_reset(out);
    assert_int_equal(ttlv_encode(root, out), 0);
}

/* JSON or XML text decodes to the message `printed` describes, byte for byte. */
static void expect_form(bool xml, const char *text, const char *printed)
{
    ttlv_item_t *root;
    kms_error_t err;
    kms_buf_t want, got;
    kms_buf_init(&want, 0);
    kms_buf_init(&got, 0);
    printed_bytes(printed, &want);
    int rc = xml ? ttlv_from_xml(text, strlen(text), NULL, arena, &root, &err)
                 : ttlv_from_json(text, strlen(text), NULL, arena, &root, &err);
    if (rc)
        fail_msg("%s: %s (offset %zu)", xml ? "XML" : "JSON", kms_error_msg(&err), err.offset);
    assert_int_equal(ttlv_encode(root, &got), 0);
    if (got.len != want.len || memcmp(got.data, want.data, want.len) != 0) {
        kms_buf_t p;
        kms_buf_init(&p, 0);
        assert_int_equal(ttlv_print(root, false, &p), 0);
        fprintf(stderr, "decoded to:\n%.*s", (int)p.len, (const char *)p.data);
        fail();
    }
    kms_buf_dispose(&want);
    kms_buf_dispose(&got);
}

/* The message `printed` describes is written exactly as `want` (compact). */
static void expect_output(bool xml, const char *printed, const char *want)
{
    ttlv_item_t *root;
    kms_error_t err;
    kms_buf_t out;
    kms_buf_init(&out, 0);
    assert_int_equal(ttlv_parse_text(printed, strlen(printed), arena, &root, &err), 0);
    int rc = xml ? ttlv_to_xml(root, 0, &out, &err) : ttlv_to_json(root, 0, &out, &err);
    assert_int_equal(rc, 0);
    if (out.len != strlen(want) || memcmp(out.data, want, out.len) != 0)
        fail_msg("wrote\n%.*s\nwant\n%s", (int)out.len, (const char *)out.data, want);
    kms_buf_dispose(&out);
}

/* Decoding `text` fails with code rc; the message holds `msg`; the offset
 * is `off` (KMS_ERROR_NO_OFFSET for "none"). */
static void expect_reject(bool xml, const ttlv_limits_t *lim, const char *text, int rc, size_t off,
                          const char *msg)
{
    ttlv_item_t *root = (ttlv_item_t *)(uintptr_t)1;
    kms_error_t err;
    int got = xml ? ttlv_from_xml(text, strlen(text), lim, arena, &root, &err)
                  : ttlv_from_json(text, strlen(text), lim, arena, &root, &err);
    if (got != rc || err.code != rc || err.offset != off || !strstr(err.msg, msg))
        fail_msg("%s\n  -> rc %d code %d offset %zu '%s'\n  want rc %d offset %zu '%s'", text, got, err.code,
                 err.offset, err.msg, rc, off, msg);
    assert_null(root);
}

/* ------------------------------------------------------------- golden */

/* The Request Message and Request Header (protocol 1.1, one item) that the
 * 1.1 test cases of KMIP Test Cases v1.2 open with, up to the Batch Item,
 * printed and in the document's XML. */
#define REQ_1_1_PRINTED                                                  \
    "Tag: Request Message, Type: Structure, Data:\n"                     \
    "  Tag: Request Header, Type: Structure, Data:\n"                    \
    "    Tag: Protocol Version, Type: Structure, Data:\n"                \
    "      Tag: Protocol Version Major, Type: Integer, Data: 1\n"        \
    "      Tag: Protocol Version Minor, Type: Integer, Data: 1\n"        \
    "    Tag: Batch Count, Type: Integer, Data: 1\n"                     \
    "  Tag: Batch Item, Type: Structure, Data:\n"
#define REQ_1_1_XML                                                      \
    "<RequestMessage>\n<RequestHeader>\n<ProtocolVersion>\n"             \
    "<ProtocolVersionMajor type=\"Integer\" value=\"1\"/>\n"             \
    "<ProtocolVersionMinor type=\"Integer\"\n  value=\"1\"/>\n</ProtocolVersion>\n" \
    "<BatchCount type=\"Integer\" value=\"1\"/>\n</RequestHeader>\n<BatchItem>\n"

/* The printed form of KMIP Test Cases v1.2, 2.2.10 TC-71-11, request 1. */
static const char tc_71_11_printed[] =
    REQ_1_1_PRINTED
    "    Tag: Operation, Type: Enumeration, Data: Create\n"
    "    Tag: Request Payload, Type: Structure, Data:\n"
    "      Tag: Object Type, Type: Enumeration, Data: Symmetric Key\n"
    "      Tag: Template-Attribute, Type: Structure, Data:\n"
    "        Tag: Attribute, Type: Structure, Data:\n"
    "          Tag: Attribute Name, Type: Text String, Data: Cryptographic Length\n"
    "          Tag: Attribute Value, Type: Integer, Data: 128\n"
    "        Tag: Attribute, Type: Structure, Data:\n"
    "          Tag: Attribute Name, Type: Text String, Data: Cryptographic Algorithm\n"
    "          Tag: Attribute Value, Type: Enumeration, Data: AES\n"
    "        Tag: Attribute, Type: Structure, Data:\n"
    "          Tag: Attribute Name, Type: Text String, Data: Cryptographic Usage Mask\n"
    "          Tag: Attribute Value, Type: Integer, Data: 0x0000000C\n"
    "        Tag: Attribute, Type: Structure, Data:\n"
    "          Tag: Attribute Name, Type: Text String, Data: x-ID\n"
    "          Tag: Attribute Value, Type: Text String, Data: TC-71-11\n"
    "    Tag: Message Extension, Type: Structure, Data:\n"
    "      Tag: Vendor Identification, Type: Text String, Data: Acme\n"
    "      Tag: Criticality Indicator, Type: Boolean, Data: FALSE\n"
    "      Tag: Vendor Extension, Type: Structure, Data:\n"
    "        Tag: Unknown tag (0x540001), Type: Text String, Data: na\n";

/* KMIP Test Cases v1.2 (OASIS), 2.2.10 TC-71-11 "Unrecognized Message
 * Extension with Criticality Indicator False", request 1, as the document
 * writes it (its line breaks inside attribute values included). */
static void test_golden_xml_tc_71_11(void **state)
{
    (void)state;
    expect_form(true,
                REQ_1_1_XML
                "<Operation type=\"Enumeration\" value=\"Create\"/>\n<RequestPayload>\n"
                "<ObjectType type=\"Enumeration\" value=\"SymmetricKey\"/>\n<TemplateAttribute>\n"
                "<Attribute>\n<AttributeName type=\"TextString\" value=\"Cryptographic Length\"/>\n"
                "<AttributeValue type=\"Integer\"\n  value=\"128\"/>\n</Attribute>\n"
                "<Attribute>\n<AttributeName type=\"TextString\" value=\"Cryptographic Algorithm\"/>\n"
                "<AttributeValue type=\"Enumeration\"\n  value=\"AES\"/>\n</Attribute>\n"
                "<Attribute>\n<AttributeName type=\"TextString\" value=\"Cryptographic Usage Mask\"/>\n"
                "<AttributeValue type=\"Integer\"\n  value=\"Decrypt\n  Encrypt\"/>\n</Attribute>\n"
                "<Attribute>\n<AttributeName type=\"TextString\" value=\"x-ID\"/>\n"
                "<AttributeValue type=\"TextString\"\n  value=\"TC-71-11\"/>\n</Attribute>\n"
                "</TemplateAttribute>\n</RequestPayload>\n<MessageExtension>\n"
                "<VendorIdentification type=\"TextString\" value=\"Acme\"/>\n"
                "<CriticalityIndicator type=\"Boolean\"\n  value=\"false\"/>\n<VendorExtension>\n"
                "<TTLV tag=\"0x540001\" type=\"TextString\" value=\"na\"/>\n</VendorExtension>\n"
                "</MessageExtension>\n</BatchItem>\n</RequestMessage>",
                tc_71_11_printed);
}

/* KMIP Test Cases v1.2, 2.2.12 TC-81-11 "Create a Key Pair", request 1:
 * Name structures inside Attribute Values, masks by name. */
static void test_golden_xml_tc_81_11(void **state)
{
    (void)state;
    expect_form(true,
                REQ_1_1_XML
                "<Operation type=\"Enumeration\" value=\"CreateKeyPair\"/>\n<RequestPayload>\n"
                "<CommonTemplateAttribute>\n<Attribute>\n"
                "<AttributeName type=\"TextString\" value=\"Cryptographic Algorithm\"/>\n"
                "<AttributeValue type=\"Enumeration\"\n  value=\"RSA\"/>\n</Attribute>\n<Attribute>\n"
                "<AttributeName type=\"TextString\" value=\"Cryptographic Length\"/>\n"
                "<AttributeValue type=\"Integer\"\n  value=\"1024\"/>\n</Attribute>\n"
                "</CommonTemplateAttribute>\n<PrivateKeyTemplateAttribute>\n<Attribute>\n"
                "<AttributeName type=\"TextString\" value=\"Name\"/>\n<AttributeValue>\n"
                "<NameValue type=\"TextString\" value=\"TC-81-11-privatekey1\"/>\n"
                "<NameType type=\"Enumeration\"                           \n"
                "  value=\"UninterpretedTextString\"/>\n</AttributeValue>\n</Attribute>\n<Attribute>\n"
                "<AttributeName type=\"TextString\" value=\"Cryptographic Usage Mask\"/>\n"
                "<AttributeValue type=\"Integer\"\n  value=\"Sign\"/>\n</Attribute>\n"
                "</PrivateKeyTemplateAttribute>\n<PublicKeyTemplateAttribute>\n<Attribute>\n"
                "<AttributeName type=\"TextString\" value=\"Name\"/>\n<AttributeValue>\n"
                "<NameValue type=\"TextString\" value=\"TC-81-11-publickey1\"/>\n"
                "<NameType type=\"Enumeration\"                           \n"
                "  value=\"UninterpretedTextString\"/>\n</AttributeValue>\n</Attribute>\n<Attribute>\n"
                "<AttributeName type=\"TextString\" value=\"Cryptographic Usage Mask\"/>\n"
                "<AttributeValue type=\"Integer\"\n  value=\"Verify\"/>\n</Attribute>\n"
                "</PublicKeyTemplateAttribute>\n</RequestPayload>\n</BatchItem>\n</RequestMessage>",
                REQ_1_1_PRINTED
                "    Tag: Operation, Type: Enumeration, Data: Create Key Pair\n"
                "    Tag: Request Payload, Type: Structure, Data:\n"
                "      Tag: Common Template-Attribute, Type: Structure, Data:\n"
                "        Tag: Attribute, Type: Structure, Data:\n"
                "          Tag: Attribute Name, Type: Text String, Data: Cryptographic Algorithm\n"
                "          Tag: Attribute Value, Type: Enumeration, Data: RSA\n"
                "        Tag: Attribute, Type: Structure, Data:\n"
                "          Tag: Attribute Name, Type: Text String, Data: Cryptographic Length\n"
                "          Tag: Attribute Value, Type: Integer, Data: 1024\n"
                "      Tag: Private Key Template-Attribute, Type: Structure, Data:\n"
                "        Tag: Attribute, Type: Structure, Data:\n"
                "          Tag: Attribute Name, Type: Text String, Data: Name\n"
                "          Tag: Attribute Value, Type: Structure, Data:\n"
                "            Tag: Name Value, Type: Text String, Data: TC-81-11-privatekey1\n"
                "            Tag: Name Type, Type: Enumeration, Data: 0x00000001\n"
                "        Tag: Attribute, Type: Structure, Data:\n"
                "          Tag: Attribute Name, Type: Text String, Data: Cryptographic Usage Mask\n"
                "          Tag: Attribute Value, Type: Integer, Data: 0x00000001\n"
                "      Tag: Public Key Template-Attribute, Type: Structure, Data:\n"
                "        Tag: Attribute, Type: Structure, Data:\n"
                "          Tag: Attribute Name, Type: Text String, Data: Name\n"
                "          Tag: Attribute Value, Type: Structure, Data:\n"
                "            Tag: Name Value, Type: Text String, Data: TC-81-11-publickey1\n"
                "            Tag: Name Type, Type: Enumeration, Data: 0x00000001\n"
                "        Tag: Attribute, Type: Structure, Data:\n"
                "          Tag: Attribute Name, Type: Text String, Data: Cryptographic Usage Mask\n"
                "          Tag: Attribute Value, Type: Integer, Data: 0x00000002\n");
}

/* The Query request of the Profiles' message-encoding test cases
 * (MSGENC-JSON-1-10 / MSGENC-XML-1-10: Query with a Maximum Response
 * Size), with the Integers as hex strings as the normative JSON example
 * writes them, Structures without "type". */
static const char query_printed[] =
    "Tag: Request Message, Type: Structure, Data:\n"
    "  Tag: Request Header, Type: Structure, Data:\n"
    "    Tag: Protocol Version, Type: Structure, Data:\n"
    "      Tag: Protocol Version Major, Type: Integer, Data: 1\n"
    "      Tag: Protocol Version Minor, Type: Integer, Data: 4\n"
    "    Tag: Maximum Response Size, Type: Integer, Data: 256\n"
    "    Tag: Batch Count, Type: Integer, Data: 1\n"
    "  Tag: Batch Item, Type: Structure, Data:\n"
    "    Tag: Operation, Type: Enumeration, Data: Query\n"
    "    Tag: Request Payload, Type: Structure, Data:\n"
    "      Tag: Query Function, Type: Enumeration, Data: Query Operations\n"
    "      Tag: Query Function, Type: Enumeration, Data: Query Objects\n";

static void test_golden_query(void **state)
{
    (void)state;
    expect_form(false,
                "{\"tag\":\"RequestMessage\", \"value\":[\n"
                "  {\"tag\":\"RequestHeader\", \"value\":[\n"
                "    {\"tag\":\"ProtocolVersion\", \"value\":[\n"
                "      {\"tag\":\"ProtocolVersionMajor\", \"type\":\"Integer\", \"value\":\"0x00000001\"},\n"
                "      {\"tag\":\"ProtocolVersionMinor\", \"type\":\"Integer\", \"value\":\"0x00000004\"}\n"
                "    ]},\n"
                "    {\"tag\":\"MaximumResponseSize\", \"type\":\"Integer\", \"value\":\"0x00000100\"},\n"
                "    {\"tag\":\"BatchCount\", \"type\":\"Integer\", \"value\":\"0x00000001\"}\n"
                "  ]},\n"
                "  {\"tag\":\"BatchItem\", \"value\":[\n"
                "    {\"tag\":\"Operation\", \"type\":\"Enumeration\", \"value\":\"Query\"},\n"
                "    {\"tag\":\"RequestPayload\", \"value\":[\n"
                "      {\"tag\":\"QueryFunction\", \"type\":\"Enumeration\",\"value\":\"QueryOperations\"},\n"
                "      {\"tag\":\"QueryFunction\", \"type\":\"Enumeration\", \"value\":\"QueryObjects\"}\n"
                "    ]}\n"
                "  ]}\n"
                "]}\n",
                query_printed);
    expect_form(true,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<!-- a comment is ignored -->\n"
                "<RequestMessage>\n  <RequestHeader>\n    <ProtocolVersion>\n"
                "      <ProtocolVersionMajor type=\"Integer\" value=\"1\"/>\n"
                "      <ProtocolVersionMinor type=\"Integer\" value=\"0x00000004\"/>\n"
                "    </ProtocolVersion>\n"
                "    <MaximumResponseSize type=\"Integer\" value=\"256\"/>\n"
                "    <BatchCount type=\"Integer\" value=\"1\"></BatchCount>\n"
                "  </RequestHeader>\n  <BatchItem type=\"Structure\">\n"
                "    <Operation type=\"Enumeration\" value=\"Query\"/>\n"
                "    <RequestPayload>\n"
                "      <QueryFunction type=\"Enumeration\" value=\"QueryOperations\"/>\n"
                "      <QueryFunction type=\"Enumeration\" value=\"0x00000002\"/>\n"
                "    </RequestPayload>\n  </BatchItem>\n</RequestMessage>\n",
                query_printed);
}

/* ---------------------------------------------------------- every type */
/* One item of each type, with values that exercise each rule. */
static const char types_printed[] =
    "Tag: Request Payload (0x420079), Type: Structure (0x01), Data:\n"
    "  Tag: Maximum Response Size (0x420050), Type: Integer (0x02), Data: -2\n"
    "  Tag: Cryptographic Usage Mask (0x42002C), Type: Integer (0x02), Data: 0x8000000C\n"
    "  Tag: Storage Status Mask (0x42008E), Type: Integer (0x02), Data: 0\n"
    "  Tag: Usage Limits Count (0x420096), Type: Long Integer (0x03), Data: 4503599627370495\n"
    "  Tag: Usage Limits Total (0x420097), Type: Long Integer (0x03), Data: 0x0010000000000000\n"
    "  Tag: Usage Limits Total (0x420097), Type: Long Integer (0x03), Data: -4503599627370496\n"
    "  Tag: Modulus (0x420052), Type: Big Integer (0x04), Data: FFFFFFFFFFFFFF01\n"
    "  Tag: Object Type (0x420057), Type: Enumeration (0x05), Data: 0x00000002\n"
    "  Tag: Object Type (0x420057), Type: Enumeration (0x05), Data: 0x8000000A\n"
    "  Tag: Fresh (0x4200A8), Type: Boolean (0x06), Data: TRUE\n"
    "  Tag: Description (0x4200FC), Type: Text String (0x07), Data: \"a<b&\\\"c\\\" \\t\\nd \\xC3\\xA9\"\n"
    "  Tag: Nonce ID (0x4200C9), Type: Byte String (0x08), Data: 00FF10\n"
    "  Tag: Nonce ID (0x4200C9), Type: Byte String (0x08), Data:\n"
    "  Tag: Time Stamp (0x420092), Type: Date-Time (0x09), Data: 0x000000004F9A54E5\n"
    "  Tag: Time Stamp (0x420092), Type: Date-Time (0x09), Data: -1\n"
    "  Tag: Time Stamp (0x420092), Type: Date-Time (0x09), Data: 0x7FFFFFFFFFFFFFFF\n"
    "  Tag: Lease Time (0x420049), Type: Interval (0x0A), Data: 4294967295\n"
    "  Tag: Unknown tag (0x540001), Type: Structure (0x01), Data: null\n";

static void test_types_json_out(void **state)
{
    (void)state;
    expect_output(false, types_printed,
                  "{\"tag\":\"RequestPayload\",\"value\":["
                  "{\"tag\":\"MaximumResponseSize\",\"type\":\"Integer\",\"value\":-2},"
                  "{\"tag\":\"CryptographicUsageMask\",\"type\":\"Integer\",\"value\":\"Encrypt|Decrypt|0x80000000\"},"
                  "{\"tag\":\"StorageStatusMask\",\"type\":\"Integer\",\"value\":0},"
                  "{\"tag\":\"UsageLimitsCount\",\"type\":\"LongInteger\",\"value\":4503599627370495},"
                  "{\"tag\":\"UsageLimitsTotal\",\"type\":\"LongInteger\",\"value\":\"0x0010000000000000\"},"
                  "{\"tag\":\"UsageLimitsTotal\",\"type\":\"LongInteger\",\"value\":\"0xFFF0000000000000\"},"
                  "{\"tag\":\"Modulus\",\"type\":\"BigInteger\",\"value\":\"0xffffffffffffff01\"},"
                  "{\"tag\":\"ObjectType\",\"type\":\"Enumeration\",\"value\":\"SymmetricKey\"},"
                  "{\"tag\":\"ObjectType\",\"type\":\"Enumeration\",\"value\":\"0x8000000A\"},"
                  "{\"tag\":\"Fresh\",\"type\":\"Boolean\",\"value\":true},"
                  "{\"tag\":\"Description\",\"type\":\"TextString\",\"value\":\"a<b&\\\"c\\\" \\t\\nd \xC3\xA9\"},"
                  "{\"tag\":\"NonceID\",\"type\":\"ByteString\",\"value\":\"00ff10\"},"
                  "{\"tag\":\"NonceID\",\"type\":\"ByteString\",\"value\":\"\"},"
                  "{\"tag\":\"TimeStamp\",\"type\":\"DateTime\",\"value\":\"2012-04-27T08:12:21+00:00\"},"
                  "{\"tag\":\"TimeStamp\",\"type\":\"DateTime\",\"value\":\"1969-12-31T23:59:59+00:00\"},"
                  "{\"tag\":\"TimeStamp\",\"type\":\"DateTime\",\"value\":\"0x7FFFFFFFFFFFFFFF\"},"
                  "{\"tag\":\"LeaseTime\",\"type\":\"Interval\",\"value\":4294967295},"
                  "{\"tag\":\"0x540001\",\"value\":[]}]}");
}

static void test_types_xml_out(void **state)
{
    (void)state;
    expect_output(true, types_printed,
                  "<RequestPayload>"
                  "<MaximumResponseSize type=\"Integer\" value=\"-2\"/>"
                  "<CryptographicUsageMask type=\"Integer\" value=\"Encrypt Decrypt 0x80000000\"/>"
                  "<StorageStatusMask type=\"Integer\" value=\"0\"/>"
                  "<UsageLimitsCount type=\"LongInteger\" value=\"4503599627370495\"/>"
                  "<UsageLimitsTotal type=\"LongInteger\" value=\"4503599627370496\"/>"
                  "<UsageLimitsTotal type=\"LongInteger\" value=\"-4503599627370496\"/>"
                  "<Modulus type=\"BigInteger\" value=\"ffffffffffffff01\"/>"
                  "<ObjectType type=\"Enumeration\" value=\"SymmetricKey\"/>"
                  "<ObjectType type=\"Enumeration\" value=\"0x8000000A\"/>"
                  "<Fresh type=\"Boolean\" value=\"true\"/>"
                  "<Description type=\"TextString\" value=\"a&lt;b&amp;&quot;c&quot; &#9;&#10;d \xC3\xA9\"/>"
                  "<NonceID type=\"ByteString\" value=\"00ff10\"/>"
                  "<NonceID type=\"ByteString\" value=\"\"/>"
                  "<TimeStamp type=\"DateTime\" value=\"2012-04-27T08:12:21+00:00\"/>"
                  "<TimeStamp type=\"DateTime\" value=\"1969-12-31T23:59:59+00:00\"/>"
                  "<TimeStamp type=\"DateTime\" value=\"0x7FFFFFFFFFFFFFFF\"/>"
                  "<LeaseTime type=\"Interval\" value=\"4294967295\"/>"
                  "<TTLV tag=\"0x540001\"/>"
                  "</RequestPayload>");
}

/* The other spellings the rules accept read to the same values. */
static void test_types_in(void **state)
{
    (void)state;
    expect_form(false,
                "{\"tag\":\"RequestPayload\",\"type\":\"Structure\",\"value\":["
                "{\"tag\":\"MaximumResponseSize\",\"type\":\"Integer\",\"value\":\"0xFFFFFFFE\"},"
                "{\"tag\":\"CryptographicUsageMask\",\"type\":\"Integer\",\"value\":\"Decrypt|0x80000000|Encrypt\"},"
                "{\"tag\":\"StorageStatusMask\",\"type\":\"Integer\",\"value\":\"0x0\"},"
                "{\"tag\":\"UsageLimitsCount\",\"type\":\"LongInteger\",\"value\":\"0xFFFFFFFFFFFFF\"},"
                "{\"tag\":\"UsageLimitsTotal\",\"type\":\"LongInteger\",\"value\":4503599627370496},"
                "{\"tag\":\"UsageLimitsTotal\",\"type\":\"LongInteger\",\"value\":\"0xfff0000000000000\"},"
                "{\"tag\":\"Modulus\",\"type\":\"BigInteger\",\"value\":-255},"
                "{\"tag\":\"ObjectType\",\"type\":\"Enumeration\",\"value\":2},"
                "{\"tag\":\"ObjectType\",\"type\":\"Enumeration\",\"value\":\"0x8000000a\"},"
                "{\"tag\":\"Fresh\",\"type\":\"Boolean\",\"value\":\"0x0000000000000001\"},"
                "{\"tag\":\"Description\",\"type\":\"TextString\",\"value\":\"a<b&\\\"c\\\" \\u0009\\nd \\u00e9\"},"
                "{\"tag\":\"NonceID\",\"type\":\"ByteString\",\"value\":\"00FF10\"},"
                "{\"tag\":\"NonceID\",\"type\":\"ByteString\",\"value\":\"\"},"
                "{\"tag\":\"TimeStamp\",\"type\":\"DateTime\",\"value\":\"2012-04-27T10:12:21+02:00\"},"
                "{\"tag\":\"TimeStamp\",\"type\":\"DateTime\",\"value\":\"1969-12-31T23:59:59.000Z\"},"
                "{\"tag\":\"TimeStamp\",\"type\":\"DateTime\",\"value\":\"0x7fffffffffffffff\"},"
                "{\"tag\":\"LeaseTime\",\"type\":\"Interval\",\"value\":\"0xFFFFFFFF\"},"
                "{\"value\":[],\"tag\":\"0x540001\"}]}",
                types_printed);
    expect_form(true,
                "<RequestPayload>"
                "<MaximumResponseSize type=\"Integer\" value=\"0xFFFFFFFE\"/>"
                "<CryptographicUsageMask type=\"Integer\" value=\" Decrypt|0x80000000\t Encrypt \"/>"
                "<StorageStatusMask type=\"Integer\" value=\"-0\"/>"
                "<UsageLimitsCount type=\"LongInteger\" value=\"0x000FFFFFFFFFFFFF\"/>"
                "<UsageLimitsTotal type=\"LongInteger\" value=\"0x10000000000000\"/>"
                "<UsageLimitsTotal type=\"LongInteger\" value=\"0xFFF0000000000000\"/>"
                "<Modulus type=\"BigInteger\" value=\"0xFF01\"/>"
                "<ObjectType type=\"Enumeration\" value=\"SymmetricKey\"/>"
                "<ObjectType type=\"Enumeration\" value=\"0x8000000A\"/>"
                "<Fresh type=\"Boolean\" value=\"1\"/>"
                "<Description type=\"TextString\" value=\"a&lt;b&amp;&#34;c&quot; &#x9;&#10;d &#233;\"/>"
                "<NonceID type=\"ByteString\" value=\"00fF10\"/>"
                "<NonceID type=\"ByteString\" value=\"\"/>"
                "<TimeStamp type=\"DateTime\" value=\"2012-04-27T03:42:21-04:30\"/>"
                "<TimeStamp type=\"DateTime\" value=\"1970-01-01T00:00:59.0+00:01\"/>"
                "<TimeStamp type=\"DateTime\" value=\"0x7FFFFFFFFFFFFFFF\"/>"
                "<LeaseTime type=\"Interval\" value=\"4294967295\"/>"
                "<TTLV tag=\"0x540001\" type=\"Structure\"></TTLV>"
                "</RequestPayload>",
                types_printed);
}

/* Indented output: one item per line, two spaces per level. */
static void test_pretty(void **state)
{
    (void)state;
    ttlv_item_t *root;
    kms_error_t err;
    kms_buf_t out;
    kms_buf_init(&out, 0);
    assert_int_equal(ttlv_parse_text(query_printed, strlen(query_printed), arena, &root, &err), 0);
    assert_int_equal(ttlv_to_xml(root, TTLV_FORM_PRETTY, &out, &err), 0);
    assert_int_equal(kms_buf_append_byte(&out, 0), 0);
    assert_string_equal((char *)out.data,
                        "<RequestMessage>\n"
                        "  <RequestHeader>\n"
                        "    <ProtocolVersion>\n"
                        "      <ProtocolVersionMajor type=\"Integer\" value=\"1\"/>\n"
                        "      <ProtocolVersionMinor type=\"Integer\" value=\"4\"/>\n"
                        "    </ProtocolVersion>\n"
                        "    <MaximumResponseSize type=\"Integer\" value=\"256\"/>\n"
                        "    <BatchCount type=\"Integer\" value=\"1\"/>\n"
                        "  </RequestHeader>\n"
                        "  <BatchItem>\n"
                        "    <Operation type=\"Enumeration\" value=\"Query\"/>\n"
                        "    <RequestPayload>\n"
                        "      <QueryFunction type=\"Enumeration\" value=\"QueryOperations\"/>\n"
                        "      <QueryFunction type=\"Enumeration\" value=\"QueryObjects\"/>\n"
                        "    </RequestPayload>\n"
                        "  </BatchItem>\n"
                        "</RequestMessage>\n");
    kms_buf_reset(&out);
    assert_int_equal(ttlv_to_json(root, TTLV_FORM_PRETTY, &out, &err), 0);
    assert_int_equal(kms_buf_append_byte(&out, 0), 0);
    assert_non_null(strstr((char *)out.data, "\n  \"value\": [\n    {\n      \"tag\": \"RequestHeader\",\n"));
    kms_buf_dispose(&out);
}

/* ---------------------------------------------------------------- names */
static void test_normalize(void **state)
{
    (void)state;
    /* the Profiles' rule applied to the names it is written for */
    static const char *const cases[][2] = {
    {"Cryptographic Usage Mask", "CryptographicUsageMask"},
    {"Template-Attribute", "TemplateAttribute"},
    {"X.509 Certificate Identifier", "X_509CertificateIdentifier"},
    {"3DES", "DES3"},
    {"Pre-Active", "PreActive"},
    {"PKCS#1", "PKCS_1"},
    {"Re-key", "ReKey"},
    {"SHA-256", "SHA_256"},
    {"P-256", "P_256"},
    {"TLS1.2", "TLS1_2"},
    {"On-line storage", "OnLineStorage"},
    {"Date-Time", "DateTime"},
    {"Uninterpreted Text String", "UninterpretedTextString"},
    {"Certificate Request (PEM)", "CertificateRequestPEM"},
    {"MAC Generate", "MACGenerate"},
    {"x-ID", "X_ID"},
    };
    char out[64];
    for (size_t i = 0; i < KMS_ARRAY_SIZE(cases); i++) {
        size_t n = ttlv_name_normalize(cases[i][0], out, sizeof(out));
        if (n == SIZE_MAX || strcmp(out, cases[i][1]) != 0)
            fail_msg("'%s' -> '%s', want '%s'", cases[i][0], out, cases[i][1]);
        assert_int_equal(n, strlen(cases[i][1]));
    }
    assert_int_equal(ttlv_name_normalize("Cryptographic Usage Mask", out, 10), SIZE_MAX);
    assert_string_equal(out, "");
}

/* Every named tag and every named enumeration value and mask bit is written
 * by name and read back to the same value: no two names of a table collide
 * once normalized, and none is lost. */
static void test_every_name(void **state)
{
    (void)state;
    kms_buf_t b;
    kms_error_t err;
    size_t tags = 0, values = 0;
    kms_buf_init(&b, 0);
    ttlv_item_t *root = ttlv_new_struct(arena, NULL, KMIP_TAG_REQUEST_PAYLOAD), *back;
    for (uint32_t tag = 0x420001; tag <= 0x4201FF; tag++) {
        if (!ttlv_tag_name(tag))
            continue;
        tags++;
        ttlv_new_struct(arena, root, tag);
        /* values: all small ones, and every single bit (masks, 0x80000000) */
        for (uint64_t v = 0; v <= 0x80000000u; v = v < 0x400 ? v + 1 : v * 2) {
            if (!ttlv_enum_name(tag, (uint32_t)v))
                continue;
            values++;
            if (ttlv_tag_type(tag) == TTLV_INTEGER)
                ttlv_new_int(arena, root, tag, (int32_t)(uint32_t)v);
            else
                ttlv_new_enum(arena, root, tag, (uint32_t)v);
        }
    }
    assert_true(tags > 280);
    assert_true(values > 450);
    for (int form = 0; form < 2; form++) {
        kms_buf_reset(&b);
        assert_int_equal(form ? ttlv_to_xml(root, 0, &b, &err) : ttlv_to_json(root, 0, &b, &err), 0);
        assert_null(memmem(b.data, b.len, "0x", 2)); /* all by name */
        int rc = form ? ttlv_from_xml((char *)b.data, b.len, NULL, arena, &back, &err)
                      : ttlv_from_json((char *)b.data, b.len, NULL, arena, &back, &err);
        if (rc)
            fail_msg("%s", err.msg);
        assert_true(ttlv_equal(root, back));
    }
    kms_buf_dispose(&b);
}

/* ------------------------------------------------------------ rejections */
#define NOOFF KMS_ERROR_NO_OFFSET
#define JP(s) "{\"tag\":\"RequestPayload\",\"value\":[" s "]}"

struct reject {
    const char *text;
    int rc;
    size_t off;       /* NOOFF: none */
    const char *msg;  /* a part of the message */
};

static void run_rejects(bool xml, const struct reject *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect_reject(xml, NULL, r[i].text, r[i].rc, r[i].off, r[i].msg);
}

/* Syntax (with jansson's offset, just past the offending token, and its
 * kind: never the token, which may be a secret), the shape
 * of an item, names, numbers and their ranges, masks, hex, Booleans, dates. */
static const struct reject json_rejects[] = {
    {"{\"tag\":\"Fresh\",\"type\":\"Boolean\",\"value\":tru}", KMS_ERR_PROTO, 43, "line 1 column 43: invalid syntax"},
    {"{\"tag\":\"Fresh\",\"tag\":\"Fresh\"}", KMS_ERR_PROTO, 20, "duplicate"},
    {"{\"tag\":\"Fresh\",\"type\":\"Boolean\",\"value\":true} x", KMS_ERR_PROTO, 47, "text after the message"},
    {JP("{\"tag\":\"Description\",\"type\":\"TextString\",\"value\":\"a\\u0000\"}"), KMS_ERR_PROTO, 91, "NUL"},
    {"[]", KMS_ERR_PROTO, NOOFF, "JSON: an item must be a JSON object"},
    {JP("{\"tag\":\"Fresh\",\"type\":\"Boolean\",\"value\":true,\"x\":1}"), KMS_ERR_PROTO, NOOFF, "JSON RequestPayload: unknown member \"x\""},
    {JP("{\"type\":\"Boolean\",\"value\":true}"), KMS_ERR_PROTO, NOOFF, "without \"tag\""},
    {JP("{\"tag\":\"Fresh\",\"type\":\"Boolean\"}"), KMS_ERR_PROTO, NOOFF, "JSON RequestPayload/Fresh: an item without \"value\""},
    {JP("{\"tag\":\"Freshh\",\"type\":\"Boolean\",\"value\":true}"), KMS_ERR_PROTO, NOOFF, "unknown tag name \"Freshh\""},
    {JP("{\"tag\":\"Fresh\",\"type\":\"Bool\",\"value\":true}"), KMS_ERR_PROTO, NOOFF, "unknown type \"Bool\""},
    {JP("{\"tag\":3,\"type\":\"Boolean\",\"value\":true}"), KMS_ERR_PROTO, NOOFF, "\"tag\" must be a string"},
    {JP("{\"tag\":\"0x430001\",\"type\":\"Boolean\",\"value\":true}"), KMS_ERR_PROTO, NOOFF, "tag 0x430001 is neither 0x42xxxx nor 0x54xxxx"},
    {JP("{\"tag\":\"0x42000\",\"type\":\"Boolean\",\"value\":true}"), KMS_ERR_PROTO, NOOFF, "unknown tag name \"0x42000\""},
    {"{\"tag\":\"RequestPayload\",\"value\":{}}", KMS_ERR_PROTO, NOOFF, "the value of a Structure must be an array"},
    {JP("{\"tag\":\"Fresh\",\"type\":\"Boolean\",\"value\":null}"), KMS_ERR_PROTO, NOOFF, "\"value\" must be an integer, true/false or a string"},
    {JP("{\"tag\":\"BatchCount\",\"type\":\"Integer\",\"value\":2147483648}"), KMS_ERR_PROTO, NOOFF, "JSON RequestPayload/BatchCount: Integer out of range"},
    {JP("{\"tag\":\"BatchCount\",\"type\":\"Integer\",\"value\":-2147483649}"), KMS_ERR_PROTO, NOOFF, "Integer out of range"},
    {JP("{\"tag\":\"BatchCount\",\"type\":\"Integer\",\"value\":1.0}"), KMS_ERR_PROTO, NOOFF, "must be an integer"},
    {JP("{\"tag\":\"BatchCount\",\"type\":\"Integer\",\"value\":\"12\"}"), KMS_ERR_PROTO, NOOFF, "bad Integer"},
    {JP("{\"tag\":\"BatchCount\",\"type\":\"Integer\",\"value\":\"0x100000000\"}"), KMS_ERR_PROTO, NOOFF, "bad Integer"},
    {JP("{\"tag\":\"Operation\",\"type\":\"Enumeration\",\"value\":-1}"), KMS_ERR_PROTO, NOOFF, "Enumeration out of range"},
    {JP("{\"tag\":\"Operation\",\"type\":\"Enumeration\",\"value\":4294967296}"), KMS_ERR_PROTO, NOOFF, "Enumeration out of range"},
    {JP("{\"tag\":\"Operation\",\"type\":\"Enumeration\",\"value\":\"Creat\"}"), KMS_ERR_PROTO, NOOFF, "unknown enumeration name"},
    {JP("{\"tag\":\"Operation\",\"type\":\"Enumeration\",\"value\":\"create\"}"), KMS_ERR_PROTO, NOOFF, "unknown enumeration name"},
    {JP("{\"tag\":\"LeaseTime\",\"type\":\"Interval\",\"value\":-1}"), KMS_ERR_PROTO, NOOFF, "bad Interval"},
    {JP("{\"tag\":\"LeaseTime\",\"type\":\"Interval\",\"value\":4294967296}"), KMS_ERR_PROTO, NOOFF, "bad Interval"},
    {JP("{\"tag\":\"UsageLimitsCount\",\"type\":\"LongInteger\",\"value\":\"0x1x\"}"), KMS_ERR_PROTO, NOOFF, "bad Long Integer"},
    {"{\"tag\":\"UsageLimitsCount\",\"type\":\"LongInteger\",\"value\":9223372036854775808}", KMS_ERR_PROTO, 74, "number out of range"},
    {JP("{\"tag\":\"CryptographicUsageMask\",\"type\":\"Integer\",\"value\":\"Encrypt||Decrypt\"}"), KMS_ERR_PROTO, NOOFF, "empty name in a mask"},
    {JP("{\"tag\":\"CryptographicUsageMask\",\"type\":\"Integer\",\"value\":\"Encrypt|\"}"), KMS_ERR_PROTO, NOOFF, "empty name in a mask"},
    {JP("{\"tag\":\"CryptographicUsageMask\",\"type\":\"Integer\",\"value\":\"Encrypt|Sgn\"}"), KMS_ERR_PROTO, NOOFF, "unknown mask bit name"},
    {JP("{\"tag\":\"CryptographicUsageMask\",\"type\":\"Integer\",\"value\":\"Encrypt Decrypt\"}"), KMS_ERR_PROTO, NOOFF, "unknown mask bit name"},
    {JP("{\"tag\":\"NonceID\",\"type\":\"ByteString\",\"value\":\"0x12\"}"), KMS_ERR_PROTO, NOOFF, "bad Byte String"},
    {JP("{\"tag\":\"NonceID\",\"type\":\"ByteString\",\"value\":\"abc\"}"), KMS_ERR_PROTO, NOOFF, "bad Byte String"},
    {JP("{\"tag\":\"NonceID\",\"type\":\"ByteString\",\"value\":\"zz\"}"), KMS_ERR_PROTO, NOOFF, "bad Byte String"},
    {JP("{\"tag\":\"NonceID\",\"type\":\"ByteString\",\"value\":12}"), KMS_ERR_PROTO, NOOFF, "bad Byte String"},
    {JP("{\"tag\":\"Modulus\",\"type\":\"BigInteger\",\"value\":\"0x123\"}"), KMS_ERR_PROTO, NOOFF, "bad Big Integer"},
    {JP("{\"tag\":\"Fresh\",\"type\":\"Boolean\",\"value\":\"true\"}"), KMS_ERR_PROTO, NOOFF, "bad Boolean"},
    {JP("{\"tag\":\"Fresh\",\"type\":\"Boolean\",\"value\":\"0x2\"}"), KMS_ERR_PROTO, NOOFF, "bad Boolean"},
    {JP("{\"tag\":\"Fresh\",\"type\":\"Boolean\",\"value\":1}"), KMS_ERR_PROTO, NOOFF, "bad Boolean"},
    {JP("{\"tag\":\"TimeStamp\",\"type\":\"DateTime\",\"value\":\"2012-04-27T08:12:21\"}"), KMS_ERR_PROTO, NOOFF, "needs a zone"},
    {JP("{\"tag\":\"TimeStamp\",\"type\":\"DateTime\",\"value\":\"2012-13-01T00:00:00Z\"}"), KMS_ERR_PROTO, NOOFF, "out of range"},
    {JP("{\"tag\":\"TimeStamp\",\"type\":\"DateTime\",\"value\":\"2011-02-29T00:00:00Z\"}"), KMS_ERR_PROTO, NOOFF, "out of range"},
    {JP("{\"tag\":\"TimeStamp\",\"type\":\"DateTime\",\"value\":\"2012-04-27T08:12:21.5Z\"}"), KMS_ERR_PROTO, NOOFF, "fractions of a second"},
    {JP("{\"tag\":\"TimeStamp\",\"type\":\"DateTime\",\"value\":\"2012-04-27 08:12:21Z\"}"), KMS_ERR_PROTO, NOOFF, "bad Date-Time"},
    {JP("{\"tag\":\"TimeStamp\",\"type\":\"DateTime\",\"value\":1335514341}"), KMS_ERR_PROTO, NOOFF, "a Date-Time takes an ISO 8601 string"},
    {JP("{\"tag\":\"Description\",\"type\":\"TextString\",\"value\":5}"), KMS_ERR_PROTO, NOOFF, "a Text String takes a string"},
};

static void test_json_rejects(void **state)
{
    (void)state;
    run_rejects(false, json_rejects, KMS_ARRAY_SIZE(json_rejects));
}

/* Depth, item and size limits, as ttlv_decode() applies them. */
static void test_limits(void **state)
{
    (void)state;
    ttlv_limits_t depth = {.max_depth = 3}, items = {.max_items = 3}, size = {.max_size = 10};
    ttlv_item_t *root;
    kms_error_t err;
    const char *j3 = "{\"tag\":\"RequestMessage\",\"value\":[{\"tag\":\"BatchItem\",\"value\":["
                     "{\"tag\":\"RequestPayload\",\"value\":[]}]}]}";
    assert_int_equal(ttlv_from_json(j3, strlen(j3), &depth, arena, &root, &err), 0);
    expect_reject(false, &depth,
                  "{\"tag\":\"RequestMessage\",\"value\":[{\"tag\":\"BatchItem\",\"value\":["
                  "{\"tag\":\"RequestPayload\",\"value\":[{\"tag\":\"Fresh\",\"type\":\"Boolean\",\"value\":true}]}]}]}",
                  KMS_ERR_LIMIT, NOOFF, "JSON RequestMessage/BatchItem/RequestPayload: nesting deeper than 3");
    assert_int_equal(ttlv_from_json(j3, strlen(j3), &items, arena, &root, &err), 0);
    expect_reject(false, &items, JP("{\"tag\":\"Fresh\",\"type\":\"Boolean\",\"value\":true},"
                                    "{\"tag\":\"Fresh\",\"type\":\"Boolean\",\"value\":true},"
                                    "{\"tag\":\"Fresh\",\"type\":\"Boolean\",\"value\":true}"),
                  KMS_ERR_LIMIT, NOOFF, "more than 3 items");
    expect_reject(false, &size, JP(""), KMS_ERR_LIMIT, 10, "over 10");
    expect_reject(true, &size, "<RequestPayload/>", KMS_ERR_LIMIT, 10, "over 10");

    const char *x3 = "<RequestMessage><BatchItem><RequestPayload/></BatchItem></RequestMessage>";
    assert_int_equal(ttlv_from_xml(x3, strlen(x3), &depth, arena, &root, &err), 0);
    expect_reject(true, &depth,
                  "<RequestMessage><BatchItem><RequestPayload><Fresh type=\"Boolean\" value=\"true\"/>"
                  "</RequestPayload></BatchItem></RequestMessage>",
                  KMS_ERR_LIMIT, 43, "XML RequestMessage/BatchItem/RequestPayload: nesting deeper than 3");
    assert_int_equal(ttlv_from_xml(x3, strlen(x3), &items, arena, &root, &err), 0);
    expect_reject(true, &items,
                  "<RequestPayload><Fresh type=\"Boolean\" value=\"true\"/><Fresh type=\"Boolean\" value=\"true\"/>"
                  "<Fresh type=\"Boolean\" value=\"true\"/></RequestPayload>",
                  KMS_ERR_LIMIT, 88, "more than 3 items");

    /* nesting the JSON library itself refuses (2048 levels) is a limit too */
    size_t n = 3000;
    char *deep = malloc(n + 1);
    assert_non_null(deep);
    memset(deep, '[', n);
    deep[n] = 0;
    assert_int_equal(ttlv_from_json(deep, n, NULL, arena, &root, &err), KMS_ERR_LIMIT);
    free(deep);
    /* a structure nested past the hard cap of 256 stays bounded whatever the caller asks */
    ttlv_limits_t huge = {.max_depth = 100000};
    kms_buf_t b;
    kms_buf_init(&b, 0);
    for (int i = 0; i < 300; i++)
        assert_int_equal(kms_buf_printf(&b, "<RequestPayload>"), 0);
    assert_int_equal(ttlv_from_xml((char *)b.data, b.len, &huge, arena, &root, &err), KMS_ERR_LIMIT);
    assert_int_equal(err.offset, 256 * 16);
    kms_buf_dispose(&b);
}

/* Well-formedness (expat's offset), DOCTYPE, text, attributes, names,
 * values; the offset is the start of the offending element. */
static const struct reject xml_rejects[] = {
    {"<Fresh type=\"Boolean\" value=\"true\">", KMS_ERR_PROTO, 35, "no element found"},
    {"<RequestPayload></Payload>", KMS_ERR_PROTO, 18, "mismatched tag"},
    {"<Description type=\"TextString\" value=\"&foo;\"/>", KMS_ERR_PROTO, 0, "undefined entity"},
    {"<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]>\n" "<Description type=\"TextString\" value=\"&lol2;\"/>", KMS_ERR_PROTO, 37, "XML: a DOCTYPE is not allowed"},
    {"<RequestPayload>x</RequestPayload>", KMS_ERR_PROTO, 16, "XML RequestPayload: text between elements"},
    {"<RequestPayload><Fresh type=\"Boolean\" value=\"true\" foo=\"1\"/></RequestPayload>", KMS_ERR_PROTO, 16, "unknown attribute foo"},
    {"<Fresh tag=\"0x4200A8\" type=\"Boolean\" value=\"true\"/>", KMS_ERR_PROTO, 0, "a tag attribute belongs only on a <TTLV> element"},
    {"<TTLV type=\"Boolean\" value=\"true\"/>", KMS_ERR_PROTO, 0, "<TTLV> needs tag="},
    {"<TTLV tag=\"0x430001\" type=\"Boolean\" value=\"true\"/>", KMS_ERR_PROTO, 0, "tag 0x430001 is neither 0x42xxxx nor 0x54xxxx"},
    {"<RequestPayload>\n  <Freshh type=\"Boolean\" value=\"true\"/></RequestPayload>", KMS_ERR_PROTO, 19, "XML RequestPayload: unknown tag name <Freshh>"},
    {"<Fresh type=\"Bool\" value=\"true\"/>", KMS_ERR_PROTO, 0, "unknown type \"Bool\""},
    {"<RequestPayload><Fresh type=\"Boolean\"/></RequestPayload>", KMS_ERR_PROTO, 16, "XML RequestPayload/Fresh: an item without a value attribute"},
    {"<RequestPayload value=\"1\"/>", KMS_ERR_PROTO, 0, "a Structure has no value attribute"},
    {"<Fresh type=\"Boolean\" value=\"true\"><Fresh type=\"Boolean\" value=\"true\"/></Fresh>", KMS_ERR_PROTO, 35, "only a Structure contains elements"},
    {"<Operation type=\"Enumeration\" value=\"1\"/>", KMS_ERR_PROTO, 0, "unknown enumeration name"},
    {"<BatchCount type=\"Integer\" value=\"2147483648\"/>", KMS_ERR_PROTO, 0, "bad Integer"},
    {"<BatchCount type=\"Integer\" value=\"1 2\"/>", KMS_ERR_PROTO, 0, "bad Integer"},
    {"<LeaseTime type=\"Interval\" value=\"-1\"/>", KMS_ERR_PROTO, 0, "bad Interval"},
    {"<Fresh type=\"Boolean\" value=\"yes\"/>", KMS_ERR_PROTO, 0, "bad Boolean"},
    {"<NonceID type=\"ByteString\" value=\"0x00\"/>", KMS_ERR_PROTO, 0, "bad Byte String"},
    {"<TimeStamp type=\"DateTime\" value=\"2012-04-27T24:00:00Z\"/>", KMS_ERR_PROTO, 0, "out of range"},
    {"", KMS_ERR_PROTO, 0, "no element found"},
};

static void test_xml_rejects(void **state)
{
    (void)state;
    run_rejects(true, xml_rejects, KMS_ARRAY_SIZE(xml_rejects));
}

/* Inside a Vendor Extension any tag is read, as ttlv_decode() does. */
static void test_vendor_tags(void **state)
{
    (void)state;
    const char *printed = "Tag: Vendor Extension, Type: Structure, Data:\n"
                          "  Tag: Unknown tag (0x014242), Type: Structure, Data:\n"
                          "    Tag: Unknown tag (0x000001), Type: Integer, Data: 7\n";
    expect_form(false,
                "{\"tag\":\"VendorExtension\",\"value\":[{\"tag\":\"0x014242\",\"value\":["
                "{\"tag\":\"0x000001\",\"type\":\"Integer\",\"value\":7}]}]}",
                printed);
    expect_form(true,
                "<VendorExtension><TTLV tag=\"0x014242\"><TTLV tag=\"0x000001\" type=\"Integer\" value=\"7\"/>"
                "</TTLV></VendorExtension>",
                printed);
    expect_reject(true, NULL, "<RequestPayload><TTLV tag=\"0x014242\"/></RequestPayload>", KMS_ERR_PROTO, 16,
                  "neither");
}

/* What XML 1.0 cannot carry is refused on output, not altered. */
static void test_xml_cannot_carry(void **state)
{
    (void)state;
    static const char *const bad[] = {"a\x01" "b", "\x1F", "x\xEF\xBF\xBE", "\xEF\xBF\xBF"};
    kms_buf_t out;
    kms_error_t err;
    kms_buf_init(&out, 0);
    for (size_t i = 0; i < KMS_ARRAY_SIZE(bad); i++) {
        ttlv_item_t *t = ttlv_new_textz(arena, NULL, KMIP_TAG_DESCRIPTION, bad[i]);
        assert_int_equal(kms_buf_append(&out, "keep", 4), 0);
        assert_int_equal(ttlv_to_xml(t, 0, &out, &err), KMS_ERR_NOTSUP);
        assert_int_equal(err.code, KMS_ERR_NOTSUP);
        assert_non_null(strstr(err.msg, "XML 1.0 cannot carry"));
        assert_int_equal(out.len, 4); /* left as it was */
        kms_buf_reset(&out);
        /* JSON carries them */
        assert_int_equal(ttlv_to_json(t, 0, &out, &err), 0);
        kms_buf_reset(&out);
    }
    /* text that is not UTF-8 (a hand-built tree) is refused by both */
    ttlv_item_t *t = ttlv_new_textz(arena, NULL, KMIP_TAG_DESCRIPTION, "\xC3");
    assert_int_equal(ttlv_to_xml(t, 0, &out, &err), KMS_ERR_INVAL);
    assert_int_equal(ttlv_to_json(t, 0, &out, &err), KMS_ERR_INVAL);
    assert_int_equal(out.len, 0);
    /* the output cap holds */
    kms_buf_t small;
    kms_buf_init(&small, 16);
    t = ttlv_new_textz(arena, NULL, KMIP_TAG_DESCRIPTION, "a long enough description");
    assert_int_equal(ttlv_to_xml(t, 0, &small, &err), KMS_ERR_LIMIT);
    assert_int_equal(ttlv_to_json(t, 0, &small, &err), KMS_ERR_LIMIT);
    assert_int_equal(small.len, 0);
    kms_buf_dispose(&small);
    kms_buf_dispose(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_xml_tc_71_11),
        cmocka_unit_test(test_golden_xml_tc_81_11),
        cmocka_unit_test(test_golden_query),
        cmocka_unit_test(test_types_json_out),
        cmocka_unit_test(test_types_xml_out),
        cmocka_unit_test(test_types_in),
        cmocka_unit_test(test_pretty),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_every_name),
        cmocka_unit_test(test_json_rejects),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_xml_rejects),
        cmocka_unit_test(test_vendor_tags),
        cmocka_unit_test(test_xml_cannot_carry),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
