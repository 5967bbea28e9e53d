"""tests/interop/test_security_tenants.py: a hostile tenant against a real
kmsd, through the second-order paths.

test_tenants.py already checks the direct cases (another tenant's id as the
object of every operation answers Item Not Found; Locate never lists
another tenant's ids). Here tenant B (globex) names tenant A's (acme) ids
where they are an *input* of its own request: a wrapping or unwrapping
key, an encryption, signing or MAC key, a derivation base or derivation
data, the key to certify or the certificate to renew or validate, the
private key to re-key, the key to split, the parts to join, a Link
target, a Locate filter, an Asynchronous Correlation Value; and through
batches (ID Placeholder after a Locate that finds only A's objects, Batch
Error Continuation), Names and custom attributes A also uses, and
identities of either role, and a removed client. Each answer must be exactly (status, reason,
message text) the one for an id that does not exist, and every attribute
of every object of A must be as before, its key bytes too.

Each reference is first made by A on its own objects, and must succeed:
the request is well-formed, so a failure for B can only be the tenancy.

Timing: an existence oracle through the time of an answer was measured by
hand, not here (a test timing microseconds would depend on the machine):
docs/security.md, review section.
"""
import uuid

from security_world import world  # noqa: F401 (fixture)
from security_world import (
    FAILED, ITEM_NOT_FOUND, PENDING, REFUSED, SUCCESS, TAG, B, BO, E, I, Identity, S, T, U, V,
    attr, attribute_values, create_aes, create_rsa_pair, find, find_all, key_bytes,
    name_attr, register_secret)


def objects_of(c, tag):
    """A tenant's set of objects every reference below needs."""
    o = {"aes": create_aes(c), "data": create_aes(c)}
    o["priv"], o["pub"] = create_rsa_pair(c)
    o["secret"] = register_secret(c, b"derivation data " + tag.encode() * 2)
    p = c.ok("Certify", U(o["pub"]), S(TAG["TEMPLATE_ATTRIBUTE"], attr(
        "Certificate Subject", S(TAG["ATTRIBUTE_VALUE"], T(TAG["CERT_SUBJECT_DN"], "CN=" + tag)))))
    o["cert"] = find(p, TAG["UID"])
    p = c.ok("CreateSplitKey", E(TAG["OBJECT_TYPE"], 2), U(o["data"]),
             I(TAG["SPLIT_KEY_PARTS"], 2), I(TAG["SPLIT_KEY_THRESHOLD"], 2),
             E(TAG["SPLIT_KEY_METHOD"], 1))
    o["parts"] = tuple(find_all(p, TAG["UID"]))
    assert len(o["parts"]) == 2, p
    return o


def link(uid, link_type=0x10A):
    return attr("Link", S(TAG["ATTRIBUTE_VALUE"], E(TAG["LINK_TYPE"], link_type),
                          T(TAG["LINKED_ID"], uid)))


def wrapped_under(c, kek_uid, plain):
    """`plain` wrapped (RFC 3394) under the key kek_uid, as its owner can."""
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap
    return aes_key_wrap(key_bytes(c, kek_uid)[0], plain)


def references(mine):
    """name -> (operation, payload builder (x -> items)) naming x where the
    request takes an id as an input; `mine` are the requester's objects."""
    aes_tmpl = S(TAG["TEMPLATE_ATTRIBUTE"], attr("Cryptographic Algorithm", V(E, 3)),
                 attr("Cryptographic Length", V(I, 128)))
    cbc = S(TAG["CRYPTO_PARAMS"], E(TAG["BLOCK_CIPHER_MODE"], 1), E(TAG["PADDING_METHOD"], 1))
    cmac = S(TAG["CRYPTO_PARAMS"], E(TAG["CRYPTO_ALGORITHM"], 3))
    wrapped = mine["wrapped"]
    return {
        "Get wrapped by x": ("Get", lambda x: [U(mine["data"]), S(
            TAG["KWS"], E(TAG["WRAPPING_METHOD"], 1), S(TAG["EKI"], U(x)))]),
        "Register unwrapped by x": ("Register", lambda x: [
            E(TAG["OBJECT_TYPE"], 2),
            S(TAG["TEMPLATE_ATTRIBUTE"], attr("Cryptographic Usage Mask", V(I, 12))),
            S(TAG["SYMMETRIC_KEY"], S(
                TAG["KEY_BLOCK"], E(TAG["KEY_FORMAT_TYPE"], 1), B(TAG["KEY_VALUE"], wrapped[x]),
                E(TAG["CRYPTO_ALGORITHM"], 3), I(TAG["CRYPTO_LENGTH"], 256),
                S(TAG["KEY_WRAPPING_DATA"], E(TAG["WRAPPING_METHOD"], 1), S(
                    TAG["EKI"], U(x), S(TAG["CRYPTO_PARAMS"],
                                        E(TAG["BLOCK_CIPHER_MODE"], 13))))))]),
        "Encrypt": ("Encrypt", lambda x: [U(x), cbc, B(TAG["DATA"], b"sixteen byte blk")]),
        "Decrypt": ("Decrypt", lambda x: [U(x), cbc, B(TAG["DATA"], b"sixteen byte blk"),
                                          B(TAG["IV"], b"\0" * 16)]),
        "Sign": ("Sign", lambda x: [U(x), S(TAG["CRYPTO_PARAMS"],
                                            E(TAG["DIGITAL_SIGNATURE_ALGORITHM"], 5)),
                                    B(TAG["DATA"], b"to be signed")]),
        "Signature Verify": ("SignatureVerify", lambda x: [
            U(x), S(TAG["CRYPTO_PARAMS"], E(TAG["DIGITAL_SIGNATURE_ALGORITHM"], 5)),
            B(TAG["DATA"], b"to be signed"), B(TAG["SIGNATURE_DATA"], b"\1" * 256)]),
        "MAC": ("MAC", lambda x: [U(x), cmac, B(TAG["DATA"], b"to be MACed")]),
        "MAC Verify": ("MACVerify", lambda x: [U(x), cmac, B(TAG["DATA"], b"to be MACed"),
                                               B(TAG["MAC_DATA"], b"\1" * 16)]),
        "Derive Key from base x": ("DeriveKey", lambda x: [
            E(TAG["OBJECT_TYPE"], 2), U(x), E(TAG["DERIVATION_METHOD"], 1),
            S(TAG["DERIVATION_PARAMETERS"], S(TAG["CRYPTO_PARAMS"],
                                                E(TAG["HASHING_ALGORITHM"], 6)),
              B(TAG["SALT"], b"salt" * 4), I(TAG["ITERATION_COUNT"], 1000)), aes_tmpl]),
        "Derive Key with data x": ("DeriveKey", lambda x: [
            E(TAG["OBJECT_TYPE"], 2), U(mine["aes"]), U(x), E(TAG["DERIVATION_METHOD"], 2),
            S(TAG["DERIVATION_PARAMETERS"], S(TAG["CRYPTO_PARAMS"],
                                                E(TAG["HASHING_ALGORITHM"], 6))), aes_tmpl]),
        "Certify x": ("Certify", lambda x: [U(x), S(TAG["TEMPLATE_ATTRIBUTE"], attr(
            "Certificate Subject", S(TAG["ATTRIBUTE_VALUE"],
                                     T(TAG["CERT_SUBJECT_DN"], "CN=again"))))]),
        "Validate x": ("Validate", lambda x: [U(x)]),
        "Create Split Key of x": ("CreateSplitKey", lambda x: [
            E(TAG["OBJECT_TYPE"], 2), U(x), I(TAG["SPLIT_KEY_PARTS"], 2),
            I(TAG["SPLIT_KEY_THRESHOLD"], 2), E(TAG["SPLIT_KEY_METHOD"], 1)]),
        "Join Split Key of parts x": ("JoinSplitKey", lambda x: [
            E(TAG["OBJECT_TYPE"], 2), *[U(p) for p in x], S(TAG["TEMPLATE_ATTRIBUTE"])]),
        "Register with a Link to x": ("Register", lambda x: [
            E(TAG["OBJECT_TYPE"], 7), S(TAG["TEMPLATE_ATTRIBUTE"], link(x)),
            S(TAG["SECRET_DATA"], E(TAG["SECRET_DATA_TYPE"], 2), S(
                TAG["KEY_BLOCK"], E(TAG["KEY_FORMAT_TYPE"], 2),
                S(TAG["KEY_VALUE"], B(TAG["KEY_MATERIAL"], b"linked" * 4))))]),
        "Add Attribute Link to x": ("AddAttribute", lambda x: [U(mine["secret"]), link(x)]),
        "Locate by Link to x": ("Locate", lambda x: [link(x)]),
        "Locate by Unique Identifier x": ("Locate", lambda x: [
            attr("Unique Identifier", V(T, x))]),
        # Destructive for the owner: run last, by B only (A's baseline
        # would retire A's key pair and certificate).
        "Re-certify x": ("ReCertify", lambda x: [U(x)]),
        "Re-key Key Pair of x": ("ReKeyKeyPair", lambda x: [T(TAG["PRIVATE_UID"], x)]),
    }


TARGET = {
    "Get wrapped by x": "aes", "Register unwrapped by x": "aes", "Encrypt": "aes",
    "Decrypt": "aes", "Sign": "priv", "Signature Verify": "pub", "MAC": "aes",
    "MAC Verify": "aes", "Derive Key from base x": "aes", "Derive Key with data x": "secret",
    "Certify x": "pub", "Validate x": "cert", "Create Split Key of x": "data",
    "Join Split Key of parts x": "parts", "Register with a Link to x": "aes",
    "Add Attribute Link to x": "aes", "Locate by Link to x": "aes",
    "Locate by Unique Identifier x": "aes", "Re-certify x": "cert",
    "Re-key Key Pair of x": "priv",
}
OWNER_SKIPS = ("Re-certify x", "Re-key Key Pair of x")


def normalized(answer, ids):
    st, rs, msg, _ = answer
    msg = msg or ""
    for i, x in enumerate(ids if isinstance(ids, tuple) else (ids,)):
        msg = msg.replace(x, "<id%d>" % i)
    return st, rs, msg


def test_foreign_ids_as_inputs_answer_as_missing_ids_and_change_nothing(world):
    ca, cb = world.conn(world.a), world.conn(world.b)
    a, b = objects_of(ca, "acme"), objects_of(cb, "globex")
    missing = {k: tuple(str(uuid.uuid4()) for _ in v) if isinstance(v, tuple)
               else str(uuid.uuid4()) for k, v in a.items()}
    # Wrapped key bytes for Register: under A's key (as A made them) for
    # A's id, random for a missing one (B cannot tell them apart).
    plain = S(TAG["KEY_VALUE"], B(TAG["KEY_MATERIAL"], bytes(range(32))))
    a["wrapped"] = {a["aes"]: wrapped_under(ca, a["aes"], plain)}
    b["wrapped"] = dict(a["wrapped"])
    b["wrapped"][missing["aes"]] = bytes(len(a["wrapped"][a["aes"]]))

    # A's own references work: the requests are well-formed.
    for name, (op, build) in references(a).items():
        if name in OWNER_SKIPS:
            continue
        st, rs, msg, _ = ca.req(op, *build(a[TARGET[name]]))
        assert st == SUCCESS, (name, st, rs, msg)

    a_ids = [a[k] for k in ("aes", "data", "priv", "pub", "secret", "cert")] + list(a["parts"])
    material = {uid: key_bytes(ca, uid) for uid in (a["aes"], a["data"], a["priv"], a["secret"])}
    before = {uid: attribute_values(ca, uid) for uid in a_ids}

    a_all = set(a_ids)
    differ = []
    for who in (world.b, world.b_pw):
        c = world.conn(who)
        try:
            for name, (op, build) in references(b).items():
                x, m = a[TARGET[name]], missing[TARGET[name]]
                foreign = c.req(op, *build(x))
                absent = c.req(op, *build(m))
                if normalized(foreign, x) != normalized(absent, m):
                    differ.append((who.name, name, normalized(foreign, x),
                                   normalized(absent, m)))
                if foreign[0] == SUCCESS:
                    # Only references that do not use the object succeed
                    # (a Link is a name; Locate finds B's own objects that
                    # link to it, nothing of A's).
                    assert op in ("Register", "AddAttribute", "Locate"), (name, foreign)
                    assert not a_all & set(find_all(foreign[3], TAG["UID"])), (name, foreign)
        finally:
            c.close()
    assert not differ, "B can tell A's ids from missing ones:\n" + "\n".join(map(str, differ))

    for uid in a_ids:
        assert attribute_values(ca, uid) == before[uid], "A's object %s changed" % uid
    for uid, m in material.items():
        assert key_bytes(ca, uid) == m
    ca.close()
    cb.close()


def same_answers(xs, ys, x_id=None, y_id=None):
    return ([normalized(a, x_id) if x_id else a[:3] for a in xs] ==
            [normalized(a, y_id) if y_id else a[:3] for a in ys])


def test_batches_placeholders_locate_options_and_async_stay_in_the_tenant(world):
    ca, cb = world.conn(world.a), world.conn(world.b)
    tag = uuid.uuid4().hex[:8]
    name = "acme-only-" + tag
    group = [attr("Object Group", V(T, "payroll-" + tag)), attr("x-app", V(T, "payroll-" + tag))]
    a_key = create_aes(ca, extra=[name_attr(name), *group])
    archived = create_aes(ca, extra=[name_attr(name + "-archived"), *group], activate=False)
    ca.ok("Archive", U(archived))
    before = {u: attribute_values(ca, u) for u in (a_key, archived)}
    cont = [E(TAG["BATCH_ERROR_CONTINUATION"], 1)]

    for who in (world.b, world.b_pw):
        c = world.conn(who)
        # The ID Placeholder after a Locate that only A's object matches
        # is the one after a Locate nothing matches: empty.
        def chain(n):
            return [("Locate", [name_attr(n)]), ("Get", []), ("GetAttributes", []),
                    ("AddAttribute", [attr("x-mark", V(T, "b"))]), ("Activate", []),
                    ("Destroy", [])]
        foreign = c.batch(chain(name), header=cont)
        absent = c.batch(chain("nobody-" + tag), header=cont)
        assert same_answers(foreign, absent), (foreign, absent)
        assert foreign[0][0] == SUCCESS and not find_all(foreign[0][3], TAG["UID"])
        assert all(a[0] == FAILED for a in foreign[1:]), foreign

        # Locate with every option and each filter only A's objects meet.
        for filters in ([name_attr(name)], [name_attr(name + "-archived")], group[:1],
                        group[1:], [attr("Unique Identifier", V(T, a_key))]):
            st, rs, msg, p = c.req("Locate", I(TAG["MAXIMUM_ITEMS"], 10),
                                   I(TAG["OFFSET_ITEMS"], 0),
                                   I(TAG["STORAGE_STATUS_MASK"], 3), *filters)
            assert st == SUCCESS and not find_all(p, TAG["UID"]), (filters, st, rs, msg, p)
            assert find(p, TAG["LOCATED_ITEMS"]) == 0, p

        # Undo: B's own Create is undone when A's key is Item Not Found.
        undo = c.batch([("Create", [E(TAG["OBJECT_TYPE"], 2), S(
            TAG["TEMPLATE_ATTRIBUTE"], attr("Cryptographic Algorithm", V(E, 3)),
            attr("Cryptographic Length", V(I, 128)), name_attr("undone-" + tag))]),
            ("Destroy", [U(a_key)])], header=[E(TAG["BATCH_ERROR_CONTINUATION"], 3)])
        assert [a[0] for a in undo] == [3, FAILED] and undo[1][1] == ITEM_NOT_FOUND, undo
        c.close()

    # Asynchronous: B cannot poll or cancel A's Asynchronous Correlation
    # Value; the answers are those for a value never issued.
    st, rs, msg, _ = ca.req("Locate", name_attr(name), header=[BO(TAG["ASYNC_INDICATOR"], True)])
    assert st == PENDING, (st, rs, msg)
    corr = find(ca.last_items[0], TAG["ASYNC_CORRELATION"])
    assert corr
    never = bytes(len(corr))
    for op in ("Poll", "Cancel"):
        foreign = cb.req(op, B(TAG["ASYNC_CORRELATION"], corr))
        absent = cb.req(op, B(TAG["ASYNC_CORRELATION"], never))
        assert foreign[:3] == absent[:3] and foreign[1] == ITEM_NOT_FOUND, (op, foreign, absent)
    # Nor continue A's Encrypt stream (its Correlation Value).
    cbc = S(TAG["CRYPTO_PARAMS"], E(TAG["BLOCK_CIPHER_MODE"], 1), E(TAG["PADDING_METHOD"], 3))
    p = ca.ok("Encrypt", U(a_key), cbc, B(TAG["DATA"], b"first part"),
              BO(TAG["INIT_INDICATOR"], True))
    stream = find(p, TAG["STREAM_CORRELATION"])
    assert stream, p
    foreign, absent = (cb.req("Encrypt", B(TAG["STREAM_CORRELATION"], v),
                              B(TAG["DATA"], b"b's part"), BO(TAG["FINAL_INDICATOR"], True))
                       for v in (stream, bytes(len(stream))))
    assert foreign[:3] == absent[:3] and foreign[1] == ITEM_NOT_FOUND, (foreign, absent)
    ca.ok("Encrypt", B(TAG["STREAM_CORRELATION"], stream), B(TAG["DATA"], b"last part"),
          BO(TAG["FINAL_INDICATOR"], True))

    for _ in range(200):
        st, rs, msg, p = ca.req("Poll", B(TAG["ASYNC_CORRELATION"], corr))
        if st != PENDING:
            break
    assert st == SUCCESS and find_all(p, TAG["UID"]) == [a_key], (st, rs, msg, p)

    for u, attrs in before.items():
        assert attribute_values(ca, u) == attrs
    ca.close()
    cb.close()


def test_names_and_chosen_identifiers_reveal_nothing(world):
    ca, cb = world.conn(world.a), world.conn(world.b)
    name = "shared-name-%s" % uuid.uuid4().hex[:8]
    a_key = create_aes(ca, extra=[name_attr(name), attr("x-owner", V(T, name))])
    # B may use the same Name and custom attribute value: no uniqueness
    # check that could say someone else has it.
    b_key = create_aes(cb, extra=[name_attr(name), attr("x-owner", V(T, name))])
    for c, mine in ((ca, a_key), (cb, b_key)):
        for f in (name_attr(name), attr("x-owner", V(T, name))):
            assert find_all(c.ok("Locate", f), TAG["UID"]) == [mine]
    # Unique Identifier is the server's: naming A's id or a new one is
    # refused alike, at Create and at Add / Modify Attribute.
    fresh = str(uuid.uuid4())
    for op, build in (
            ("Create", lambda x: [E(TAG["OBJECT_TYPE"], 2), S(
                TAG["TEMPLATE_ATTRIBUTE"], attr("Cryptographic Algorithm", V(E, 3)),
                attr("Cryptographic Length", V(I, 128)), attr("Unique Identifier", V(T, x)))]),
            ("AddAttribute", lambda x: [U(b_key), attr("Unique Identifier", V(T, x))]),
            ("ModifyAttribute", lambda x: [U(b_key), attr("Unique Identifier", V(T, x))])):
        foreign, absent = cb.req(op, *build(a_key)), cb.req(op, *build(fresh))
        assert foreign[0] == FAILED and normalized(foreign, a_key) == normalized(absent, fresh), \
            (op, foreign, absent)
    assert find_all(ca.ok("Locate", name_attr(name)), TAG["UID"]) == [a_key]
    ca.close()
    cb.close()


def test_roles_and_removed_clients(world):
    w = world
    b_key = create_aes(w.conn(w.b), extra=[name_attr("globex-role-key")])
    missing = str(uuid.uuid4())
    # An admin-role password client of acme over acme's client-role
    # certificate acts with the lesser role: its tenant only.
    w.add_password_client("acme", "acme-ops", "acme-ops-Pw-1", role="admin")
    ops = w.conn(Identity("acme", "acme-ops", w.a.cert, w.a.key, "acme-ops", "acme-ops-Pw-1"))
    foreign, absent = ops.req("Get", U(b_key)), ops.req("Get", U(missing))
    assert normalized(foreign, b_key) == normalized(absent, missing) and \
        foreign[1] == ITEM_NOT_FOUND, (foreign, absent)
    assert not find_all(ops.ok("Locate", name_attr("globex-role-key")), TAG["UID"])
    ops.close()
    # A globex password over the admin's certificate (tenant default):
    # refused, the tenants differ.
    c = w.admin()
    c.username, c.password = w.b_pw.user, w.b_pw.password
    st, rs, _, _ = c.req("Get", U(b_key))
    assert st == FAILED and rs in REFUSED, (st, rs)
    c.close()

    # A removed password client is refused from its next request on, on
    # its open connection too, although its password verified a moment
    # before (the verification cache is keyed by the stored hash).
    w.add_password_client("globex", "carol", "carol-Pw-5e2b")
    carol = w.conn(Identity("globex", "carol", w.b.cert, w.b.key, "carol", "carol-Pw-5e2b"))
    assert carol.req("Get", U(b_key))[0] == SUCCESS
    w.k.kmsctl("client", "remove", "carol")
    st, rs, _, _ = carol.req("Get", U(b_key))
    assert st == FAILED and rs in REFUSED, (st, rs)
    carol.close()
