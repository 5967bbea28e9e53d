/*
 * ttlv/names.c: the normalized names of the JSON and XML message encodings.
 *
 * The KMIP Profiles (1.3 and 1.4, "Normalizing Names" of the JSON and of
 * the XML encoding) spell tags, types, enumeration values and mask bits
 * without spaces or punctuation: "Cryptographic Usage Mask" is
 * "CryptographicUsageMask", "3DES" is "DES3", "X.509" is "X_509". This file
 * implements that rule once, and indexes the normalized form of every name
 * in tags.def / enums.def (and of the type names) so that a name read from
 * a message is found by binary search. The index is built on first use (call_once) from the
 * tables themselves, so it cannot drift from them, and is read-only after.
 *
 * It deliberately accepts only exactly normalized names on input (no case
 * folding, no specification spellings): those are what the encodings
 * define.
 */
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include "ttlv/ttlv_int.h"

static bool is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/*
 * The six steps of the Profiles, in order:
 *  1. '(' and ')' become spaces;
 *  2. a non-word character followed by a letter and then a lower-case
 *     letter becomes a space ("Pre-Active" -> "Pre Active");
 *  3. every other non-word character except a space becomes '_';
 *  4. digits that start the first word move to its end ("3DES" -> "DES3");
 *  5. the first letter of each word is capitalized;
 *  6. the words are joined without the spaces.
 * Step 2 is applied left to right; a match can never overlap the next one
 * because the two characters after a match are letters (word characters).
 */
size_t ttlv_name_normalize(const char *name, char *out, size_t outsz)
{
    char w[256];
    size_t n = name ? strlen(name) : 0;
    if (!out || outsz == 0)
        return SIZE_MAX;
    out[0] = 0;
    if (n >= sizeof(w) || n >= outsz) /* never lengthens: n < outsz is enough */
        return SIZE_MAX;
    memcpy(w, name, n + 1);
    for (size_t i = 0; i < n; i++)
        if (w[i] == '(' || w[i] == ')')
            w[i] = ' ';
    for (size_t i = 0; i + 2 < n; i++)
        if (!is_word(w[i]) && is_alpha(w[i + 1]) && w[i + 2] >= 'a' && w[i + 2] <= 'z')
            w[i] = ' ';
    for (size_t i = 0; i < n; i++)
        if (!is_word(w[i]) && w[i] != ' ')
            w[i] = '_';
    /* step 4 on the first word, w[0..end) */
    size_t end = 0, digits = 0;
    while (end < n && w[end] != ' ')
        end++;
    while (digits < end && is_digit(w[digits]))
        digits++;
    if (digits > 0 && digits < end) {
        char d[sizeof(w)];
        memcpy(d, w, digits);
        memmove(w, w + digits, end - digits);
        memcpy(w + end - digits, d, digits);
    }
    size_t o = 0;
    bool start = true;
    for (size_t i = 0; i < n; i++) {
        if (w[i] == ' ') {
            start = true;
            continue;
        }
        out[o++] = start && w[i] >= 'a' && w[i] <= 'z' ? (char)(w[i] - 'a' + 'A') : w[i];
        start = false;
    }
    out[o] = 0;
    return o;
}

const char *ttlv_tag_norm(uint32_t tag, char *buf)
{
    const char *name = ttlv_tag_name(tag);
    if (!name || ttlv_name_normalize(name, buf, TTLV_NORM_MAX) == SIZE_MAX)
        return NULL;
    return buf;
}

const char *ttlv_enum_norm(uint32_t tag, uint32_t value, char *buf)
{
    const char *name = ttlv_enum_name(tag, value);
    if (!name || ttlv_name_normalize(name, buf, TTLV_NORM_MAX) == SIZE_MAX)
        return NULL;
    return buf;
}

/* ------------------------------------------------------------- the index */
/* One sorted array per kind: tags (set NULL) and enumeration/mask values
 * (set = the table's identity for the set). Sorted by set, then name. */
struct norm_entry {
    const void *set;
    uint32_t value;
    char name[TTLV_NORM_MAX];
};

static struct norm_entry tag_index[TTLV_MAX_TAG_NAMES];
static size_t tag_count;
static struct norm_entry enum_index[TTLV_MAX_ENUM_NAMES];
static size_t enum_count;
/* Normalized type names by type ("" for none), from ttlv_type_name(). */
static char type_norm[TTLV_INTERVAL + 1][16];
static once_flag index_once = ONCE_FLAG_INIT;

static int entry_cmp(const void *a, const void *b)
{
    const struct norm_entry *x = a, *y = b;
    if (x->set != y->set)
        return (uintptr_t)x->set < (uintptr_t)y->set ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void add_entry(struct norm_entry *idx, size_t *count, size_t cap, const void *set, uint32_t v,
                      const char *name)
{
    if (*count < cap && ttlv_name_normalize(name, idx[*count].name, TTLV_NORM_MAX) != SIZE_MAX) {
        idx[*count].set = set;
        idx[*count].value = v;
        (*count)++;
    }
}

static void index_build(void)
{
    const char *name;
    uint32_t v;
    const void *set;
    for (size_t i = 0; (name = ttlv_tag_entry(i, &v)) != NULL; i++)
        add_entry(tag_index, &tag_count, TTLV_MAX_TAG_NAMES, NULL, v, name);
    for (size_t i = 0; (name = ttlv_enum_entry(i, &set, &v)) != NULL; i++)
        add_entry(enum_index, &enum_count, TTLV_MAX_ENUM_NAMES, set, v, name);
    qsort(tag_index, tag_count, sizeof(tag_index[0]), entry_cmp);
    qsort(enum_index, enum_count, sizeof(enum_index[0]), entry_cmp);
    for (int t = TTLV_STRUCTURE; t <= TTLV_INTERVAL; t++)
        ttlv_name_normalize(ttlv_type_name((enum ttlv_type)t), type_norm[t], sizeof(type_norm[t]));
}

static int index_find(const struct norm_entry *idx, size_t n, const void *set, const char *name,
                      uint32_t *value_out)
{
    struct norm_entry key = {.set = set};
    if (!name || strlen(name) >= sizeof(key.name))
        return KMS_ERR_NOTFOUND;
    strcpy(key.name, name);
    const struct norm_entry *e = bsearch(&key, idx, n, sizeof(*idx), entry_cmp);
    if (!e)
        return KMS_ERR_NOTFOUND;
    *value_out = e->value;
    return 0;
}

const char *ttlv_type_norm(enum ttlv_type t)
{
    if ((int)t < TTLV_STRUCTURE || t > TTLV_INTERVAL)
        return NULL;
    call_once(&index_once, index_build);
    return type_norm[t];
}

int ttlv_type_by_norm(const char *name, enum ttlv_type *out)
{
    call_once(&index_once, index_build);
    for (int t = TTLV_STRUCTURE; name && t <= TTLV_INTERVAL; t++) {
        if (strcmp(type_norm[t], name) == 0) {
            *out = (enum ttlv_type)t;
            return 0;
        }
    }
    return KMS_ERR_NOTFOUND;
}

int ttlv_tag_by_norm(const char *name, uint32_t *tag_out)
{
    call_once(&index_once, index_build);
    return index_find(tag_index, tag_count, NULL, name, tag_out);
}

int ttlv_enum_by_norm(uint32_t tag, const char *name, uint32_t *value_out)
{
    const void *set = ttlv_enum_set(tag);
    if (!set)
        return KMS_ERR_NOTFOUND;
    call_once(&index_once, index_build);
    return index_find(enum_index, enum_count, set, name, value_out);
}
