/* SPDX-License-Identifier: Apache-2.0 */
/* Private keys under the root key, sign and verify, RSAES-OAEP, ECDH, PKCS #8, HMAC
 * (src/kms/asym.c). The key spec table itself is test_keyspec.c's. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "asym.h"
#include "test_util.h"

#define ARN1 "arn:aws:kms:us-east-1:111122223333:key/8e28b0e3-7804-4034-8195-9843a308fa81"
#define ARN2 "arn:aws:kms:us-east-1:111122223333:key/00000000-7804-4034-8195-9843a308fa81"

/* Generated with Python cryptography 41 (an independent implementation): an
 * RSA-2048 RSAPrivateKey, its deterministic RSASSA-PKCS1-v1_5 SHA-256
 * signature of "abc", and a P-256 ECPrivateKey with its SubjectPublicKeyInfo. */
#define RSA2048_DER \
    "308204a20201000282010100d807ffacba2837a7f98abe75fc14d52a5e7053cbb1f8bdc828bc927ff2cca3c72495ce0a8a5708448ef965c6" \
    "e264805636a4ac2eb7bb5eba32096a67b018ccf79ad4cd81630a28a20f67713956e767dcebd9efe6c6d617e6d67309282596ede036c50228" \
    "3f8f0f080fc61a453a492488ac1fb8dafa57ba8fa8d488e08717935555d4613b12f20c1aca515b5c7e5103290660311ce6754f457812190b" \
    "e1f39ebbd85d4f46167f59f45bbdcf7cbc74e6adecb15463ea6526ef04d38c2b57930ca3ebd2f5bef8518cb6f7950245eb8ffdbd31178aca" \
    "7cd771614f332ec3a29d004cf42b66051bf5a9da5fc65f4f26e039f3a95e86286726ded2055dc33258654b8102030100010282010004235c" \
    "160b8f556897eebcd0ff0209a6c8fe1316d7eb053ca22e218ac6a47d9f250fe30d5fe2c4a7668b37b440762f20a7a58e204b77f0fbb55569" \
    "96c0a06afdb3b72f9412c8f928088e41549939efcb03300ea8bfa68e78e722f73a100544fb7a6519f25a2c53fc022c57e8bb51f71b909b7f" \
    "739f5fc294b9a5cf94e8758ec686c7a9cc6192bccc7a3c6f19a2a12aa52c18d783093a433842c5566f99cb6a46ab1b3ea6f6fa317cd856ac" \
    "ce32c3d6789dec7bdba9b91df8b5d24365afe50642357b69fff7a22c765dc8f4642c0fb91a8f71c5302b612cec310920b35b25c905acf567" \
    "6059ca6c3861280c7121cea52595190ab20d82746dd99cb45ecfd7dca902818100fe69e0441b5ab6740e6d4cb845a2501b19f319785ebccc" \
    "885c3c1eacc6365670417452554a0b8088c7a6226e6b2ddb4504c32ccf0f92b068e6010af1092485b7d6d8b1e9e20230bff43277405da5e8" \
    "96987b79b0bfd9c960208748c0a421d390750214a8e35e933f0bc5b0941b2ce723a60e384b8a65ff982fa6e1f74378295902818100d960da" \
    "391705a8596a1c386e7de75c099e03cb7a10b8c0377d71a819e1637da7b5d27a7025d0aabd4f84ec87000843ba30d677b17d4aafdc8cb0f7" \
    "42261d2165b9570dbd8eccc09e481e37e5acee9c9992ce8fccd1e62b419ae3b9a9669b27f3bd02a8347f9a0478f0f62f994567ba76086ffa" \
    "d8c47c2991f8e1461e4f7e466902818035dfc9c3e25f053ff24626f6e698068a96a62a00995f3598b29f708779b9cbf81d843a632138ea51" \
    "0ca61ba8723dd5aef9e132bdee384bef0ab5b1d174f42cf4cf243818a4e97dd5482adfa1dbb2e45bef924624ad9bbacf06545f8d9bb4260e" \
    "f3182bb3cfe2192042a7ec4a90aea38ba30063df6b414a2cb9fa86e34b80489102818028c71868b93ee073d589f1b4187e3c2fb9aab092f7" \
    "6c10f2d7df684f628e8d55d6afe334028400637ef54a8190a9fc3a834ad82d3d79b33fc64cb4357e7cdc74feadabf031478ba2a598b597aa" \
    "3720bd5662d56af0bd22c42dd02655f6df88411ae5d2b3f673e7fee004eeacebee277658e2d8c5ad26358e2287efe563b826710281805ef6" \
    "7e7f9e933f961b298ae77040a1b2366d87e367177ede126dcd400e578cf54111e9a4664db0c8de8dbd981aa8dfed3dd33a18c13ee0799bf9" \
    "b01804a4c27605def2e9bd7b3c39e331a8575883da9a04374da8f89e93e77c8faf44367afcc69467e9c881801d3b02c8c247d426225bed62" \
    "3169f207a03ad0eb5a84678b7dd9"
#define RSA2048_SIG_ABC \
    "4d280bfe3dffbe9cb4e86dd30a22c1e6b48e19554c6820c689f473bc55d18cdc2c1360558c090ecc3570dfddc39af4ff80090ae86820ef1c" \
    "27a795f95b41dbd965ee86a5658213bbccdd6954aa4e9944071f63613b9a801fd7437e0f1ad0c8b8763bda7f601bfe328e596d387c13d21d" \
    "24467c1787894193decc583981ddf92d4aa7952cfd44b1105be13bdad55f2a6ddbc50de96b67507aae752d5add1a5dd86922f6969eb2d29f" \
    "bc57daa443d37a2c587b87f5ae864c1e77fed9e9025cb9fdaca2dc7dec81740d86f860015a510239cadb2bab5e489fb16c61fd2a75c65f5a" \
    "bc1d1d72751881dafd39cccb3cda55341a0b6b4e90183afdb184079a097c9420"
#define P256_DER \
    "30770201010420f0489d030ab5430dcb4984813e0bfc24c58cc369d46e0237f57fd2affe3785e7a00a06082a8648ce3d030107a144034200" \
    "04f2d33df2b21a899d399a51006ccfb5edbe9db86550bddc7e3be199b4b701d804b4c150828209ecf5da56dbd6bdf0c3584208e2d7854258" \
    "5a474665f0169511cd"
#define P256_SPKI \
    "3059301306072a8648ce3d020106082a8648ce3d03010703420004f2d33df2b21a899d399a51006ccfb5edbe9db86550bddc7e3be199b4b7" \
    "01d804b4c150828209ecf5da56dbd6bdf0c3584208e2d78542585a474665f0169511cd"

static void t_root(kms_root_key *rk)
{
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/root-asym-%d.key", t_tmpdir(), (int)getpid());
    unlink(path);
    assert_ok(kms_root_key_load(path, rk));
    unlink(path);
}

static EVP_PKEY *t_load(const char *spec, const char *hex)
{
    cl_buf der;
    t_hex(&der, hex);
    EVP_PKEY *pkey = NULL;
    assert_ok(kms_asym_load(kms_spec_find(spec), der.data, der.len, &pkey));
    cl_buf_free(&der);
    return pkey;
}

static void test_algorithm_tables(void **state)
{
    (void)state;
    assert_int_equal(kms_sig_alg_find("ECDSA_SHA_512")->md_len, 64);
    assert_int_equal(kms_sig_alg_find("RSASSA_PSS_SHA_384")->md_len, 48);
    assert_null(kms_sig_alg_find("SM2DSA"));
    assert_null(kms_sig_alg_find("ECDSA_SHA_1"));
    assert_int_equal(kms_enc_alg_find("RSAES_OAEP_SHA_1")->md_len, 20);
    assert_null(kms_enc_alg_find("SYMMETRIC_DEFAULT"));
    assert_null(kms_enc_alg_find("SM2PKE"));
    /* Encrypt's table in the AWS KMS API Reference. */
    static const struct {
        unsigned bits;
        const char *alg;
        size_t max;
    } oaep[] = {{2048, "RSAES_OAEP_SHA_1", 214}, {2048, "RSAES_OAEP_SHA_256", 190},
                {3072, "RSAES_OAEP_SHA_1", 342}, {3072, "RSAES_OAEP_SHA_256", 318},
                {4096, "RSAES_OAEP_SHA_1", 470}, {4096, "RSAES_OAEP_SHA_256", 446}};
    for (size_t i = 0; i < sizeof(oaep) / sizeof(oaep[0]); i++)
        assert_int_equal(kms_oaep_max(oaep[i].bits, kms_enc_alg_find(oaep[i].alg)), oaep[i].max);
    assert_int_equal(kms_oaep_max(256, kms_enc_alg_find("RSAES_OAEP_SHA_256")), 0);
}

static void test_known_answer_pkcs1(void **state)
{
    (void)state;
    EVP_PKEY *pkey = t_load("RSA_2048", RSA2048_DER);
    const kms_sig_alg *alg = kms_sig_alg_find("RSASSA_PKCS1_V1_5_SHA_256");
    cl_buf sig, want;
    cl_buf_init(&sig, KMS_SIGNATURE_MAX);
    t_hex(&want, RSA2048_SIG_ABC);
    assert_ok(kms_asym_sign(pkey, alg, false, (const uint8_t *)"abc", 3, &sig));
    assert_int_equal(sig.len, want.len);
    assert_memory_equal(sig.data, want.data, want.len);
    bool valid = false;
    assert_ok(kms_asym_verify(pkey, alg, false, (const uint8_t *)"abc", 3, want.data, want.len, &valid));
    assert_true(valid);
    assert_ok(kms_asym_verify(pkey, alg, false, (const uint8_t *)"abd", 3, want.data, want.len, &valid));
    assert_false(valid);
    /* The same signature through DIGEST: SHA-256("abc") (FIPS 180-2 B.1). */
    cl_buf d;
    t_hex(&d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cl_buf_reset(&sig);
    assert_ok(kms_asym_sign(pkey, alg, true, d.data, d.len, &sig));
    assert_memory_equal(sig.data, want.data, want.len);
    assert_fails(kms_asym_sign(pkey, alg, true, d.data, d.len - 1, &sig), CL_ERR_USAGE, "invalid length");
    assert_fails(kms_asym_verify(pkey, alg, true, d.data, 33, want.data, want.len, &valid), CL_ERR_USAGE,
                 "invalid length");
    /* An ECDSA algorithm on an RSA key is refused, not attempted. */
    assert_fails(kms_asym_sign(pkey, kms_sig_alg_find("ECDSA_SHA_256"), false, d.data, d.len, &sig), CL_ERR_KEY,
                 "does not apply");
    cl_buf_free(&d);
    cl_buf_free(&sig);
    cl_buf_free(&want);
    EVP_PKEY_free(pkey);
}

static void test_sign_verify_every_algorithm(void **state)
{
    (void)state;
    static const char *const specs[] = {"RSA_2048", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
                                        "ECC_SECG_P256K1"};
    const uint8_t msg[] = "model weights sha384";
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        const kms_spec_info *s = kms_spec_find(specs[i]);
        cl_buf der;
        cl_buf_init_secret(&der, KMS_PRIVATE_MAX);
        assert_ok(kms_asym_generate(s, &der));
        EVP_PKEY *pkey = NULL;
        assert_ok(kms_asym_load(s, der.data, der.len, &pkey));
        for (size_t a = 0; s->algs[KMS_USAGE_SIGN_VERIFY][a] != NULL; a++) {
            const kms_sig_alg *alg = kms_sig_alg_find(s->algs[KMS_USAGE_SIGN_VERIFY][a]);
            cl_buf sig;
            cl_buf_init(&sig, KMS_SIGNATURE_MAX);
            bool valid = false;
            assert_ok(kms_asym_sign(pkey, alg, false, msg, sizeof(msg), &sig));
            assert_ok(kms_asym_verify(pkey, alg, false, msg, sizeof(msg), sig.data, sig.len, &valid));
            assert_true(valid);
            sig.data[sig.len / 2] ^= 0x04;
            assert_ok(kms_asym_verify(pkey, alg, false, msg, sizeof(msg), sig.data, sig.len, &valid));
            assert_false(valid);
            assert_ok(kms_asym_verify(pkey, alg, false, msg, sizeof(msg), sig.data, 0, &valid));
            assert_false(valid);
            cl_buf_free(&sig);
        }
        EVP_PKEY_free(pkey);
        cl_buf_free(&der);
    }
}

static void test_load_checks_spec(void **state)
{
    (void)state;
    cl_buf rsa, p256;
    t_hex(&rsa, RSA2048_DER);
    t_hex(&p256, P256_DER);
    EVP_PKEY *pkey = NULL;
    assert_fails(kms_asym_load(kms_spec_find("RSA_3072"), rsa.data, rsa.len, &pkey), CL_ERR_FORMAT, "not RSA_3072");
    assert_fails(kms_asym_load(kms_spec_find("ECC_NIST_P384"), p256.data, p256.len, &pkey), CL_ERR_FORMAT,
                 "not ECC_NIST_P384");
    assert_fails(kms_asym_load(kms_spec_find("ECC_NIST_P256"), rsa.data, rsa.len, &pkey), CL_ERR_FORMAT,
                 "does not parse");
    assert_fails(kms_asym_load(kms_spec_find("ECC_NIST_P256"), p256.data, p256.len - 1, &pkey), CL_ERR_FORMAT,
                 "does not parse");
    assert_ok(cl_buf_append_u8(&p256, 0));
    assert_fails(kms_asym_load(kms_spec_find("ECC_NIST_P256"), p256.data, p256.len, &pkey), CL_ERR_FORMAT, "trailing");
    assert_fails(kms_asym_load(kms_spec_find("HMAC_256"), p256.data, p256.len, &pkey), CL_ERR_INTERNAL, "no private");
    assert_null(pkey);
    /* GetPublicKey's SubjectPublicKeyInfo matches cryptography's. */
    cl_buf_truncate(&p256, p256.len - 1);
    assert_ok(kms_asym_load(kms_spec_find("ECC_NIST_P256"), p256.data, p256.len, &pkey));
    cl_buf pub, want;
    cl_buf_init(&pub, KMS_PUBLIC_MAX);
    t_hex(&want, P256_SPKI);
    assert_ok(kms_asym_public_der(pkey, &pub));
    assert_int_equal(pub.len, want.len);
    assert_memory_equal(pub.data, want.data, want.len);
    EVP_PKEY_free(pkey);
    cl_buf_free(&pub);
    cl_buf_free(&want);
    cl_buf_free(&rsa);
    cl_buf_free(&p256);
}

static void test_private_wrap(void **state)
{
    (void)state;
    kms_root_key rk = {0}, other = {0};
    t_root(&rk);
    t_root(&other);
    cl_buf der, wrapped, back;
    t_hex(&der, P256_DER);
    cl_buf_init(&wrapped, KMS_PRIVATE_WRAPPED_MAX);
    cl_buf_init_secret(&back, KMS_PRIVATE_MAX);
    assert_ok(kms_private_wrap(&rk, ARN1, 1, der.data, der.len, &wrapped));
    assert_int_equal(wrapped.len, der.len + CL_GCM_NONCE_LEN + CL_GCM_TAG_LEN);
    assert_null(memmem(wrapped.data, wrapped.len, der.data + 7, 32)); /* the private scalar is not in the row */
    assert_ok(kms_private_unwrap(&rk, ARN1, 1, wrapped.data, wrapped.len, &back));
    assert_int_equal(back.len, der.len);
    assert_memory_equal(back.data, der.data, der.len);
    cl_buf_free(&back);
    cl_buf_init_secret(&back, KMS_PRIVATE_MAX);
    assert_fails(kms_private_unwrap(&rk, ARN2, 1, wrapped.data, wrapped.len, &back), CL_ERR_AUTH, "does not verify");
    assert_fails(kms_private_unwrap(&rk, ARN1, 2, wrapped.data, wrapped.len, &back), CL_ERR_AUTH, "does not verify");
    assert_fails(kms_private_unwrap(&other, ARN1, 1, wrapped.data, wrapped.len, &back), CL_ERR_AUTH, "does not verify");
    assert_int_equal(back.len, 0);
    wrapped.data[CL_GCM_NONCE_LEN + 3] ^= 1;
    assert_fails(kms_private_unwrap(&rk, ARN1, 1, wrapped.data, wrapped.len, &back), CL_ERR_AUTH, "does not verify");
    wrapped.data[CL_GCM_NONCE_LEN + 3] ^= 1;
    assert_fails(kms_private_unwrap(&rk, ARN1, 1, wrapped.data, CL_GCM_NONCE_LEN + CL_GCM_TAG_LEN, &back),
                 CL_ERR_FORMAT, "outside");
    assert_fails(kms_private_unwrap(&rk, ARN1, 1, wrapped.data, KMS_PRIVATE_WRAPPED_MAX + 1, &back), CL_ERR_FORMAT,
                 "outside");
    /* Symmetric material wrapped under the same ARN is not a private key row. */
    uint8_t material[KMS_MATERIAL_LEN] = {1, 2, 3};
    cl_buf sym;
    cl_buf_init(&sym, 4096);
    assert_ok(kms_material_wrap(&rk, ARN1, 1, material, &sym));
    assert_fails(kms_private_unwrap(&rk, ARN1, 1, sym.data, sym.len, &back), CL_ERR_AUTH, "does not verify");
    cl_buf_free(&sym);
    cl_buf_free(&der);
    cl_buf_free(&wrapped);
    cl_buf_free(&back);
    kms_root_key_free(&rk);
    kms_root_key_free(&other);
}

static EVP_PKEY *t_fresh(const char *spec)
{
    EVP_PKEY *pkey = NULL;
    assert_ok(kms_asym_keygen(kms_spec_find(spec), &pkey));
    return pkey;
}

static void test_oaep(void **state)
{
    (void)state;
    EVP_PKEY *pkey = t_load("RSA_2048", RSA2048_DER), *other = t_fresh("RSA_2048");
    uint8_t pt[215];
    memset(pt, 0xa5, sizeof(pt));
    for (size_t i = 0; i < 2; i++) {
        const kms_enc_alg *alg = kms_enc_alg_find(i == 0 ? "RSAES_OAEP_SHA_1" : "RSAES_OAEP_SHA_256");
        size_t max = kms_oaep_max(2048, alg);
        cl_buf ct, back;
        cl_buf_init(&ct, KMS_RSA_MAX_BYTES);
        cl_buf_init_secret(&back, KMS_BLOB_MAX);
        assert_ok(kms_asym_encrypt(pkey, alg, pt, max, &ct));
        assert_int_equal(ct.len, 256);
        assert_ok(kms_asym_decrypt(pkey, alg, ct.data, ct.len, &back));
        assert_int_equal(back.len, max);
        assert_memory_equal(back.data, pt, max);
        /* Randomized: the same plaintext twice is two ciphertexts. */
        cl_buf ct2;
        cl_buf_init(&ct2, KMS_RSA_MAX_BYTES);
        assert_ok(kms_asym_encrypt(pkey, alg, pt, max, &ct2));
        assert_memory_not_equal(ct.data, ct2.data, ct.len);
        cl_buf_free(&ct2);
        assert_fails(kms_asym_encrypt(pkey, alg, pt, max + 1, &ct), CL_ERR_LIMIT, "at most");
        /* The other digest, another key, a short or altered ciphertext: one error, nothing out. */
        const kms_enc_alg *wrong = kms_enc_alg_find(i == 0 ? "RSAES_OAEP_SHA_256" : "RSAES_OAEP_SHA_1");
        assert_ok(kms_asym_encrypt(pkey, alg, pt, 10, &ct));
        assert_fails(kms_asym_decrypt(pkey, wrong, ct.data, ct.len, &back), CL_ERR_AUTH, "does not decrypt");
        assert_fails(kms_asym_decrypt(other, alg, ct.data, ct.len, &back), CL_ERR_AUTH, "does not decrypt");
        assert_fails(kms_asym_decrypt(pkey, alg, ct.data, ct.len - 1, &back), CL_ERR_AUTH, "does not decrypt");
        uint8_t flipped[256];
        memcpy(flipped, ct.data, sizeof(flipped));
        flipped[100] ^= 1;
        assert_fails(kms_asym_decrypt(pkey, alg, flipped, sizeof(flipped), &back), CL_ERR_AUTH, "does not decrypt");
        assert_int_equal(back.len, 0);
        cl_buf_free(&ct);
        cl_buf_free(&back);
    }
    /* An EC key does no RSAES. */
    EVP_PKEY *ec = t_load("ECC_NIST_P256", P256_DER);
    cl_buf ct;
    cl_buf_init(&ct, KMS_RSA_MAX_BYTES);
    assert_fails(kms_asym_encrypt(ec, kms_enc_alg_find("RSAES_OAEP_SHA_256"), pt, 1, &ct), CL_ERR_KEY, "RSA key");
    cl_buf_free(&ct);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(pkey);
    EVP_PKEY_free(other);
}

/* RFC 5903 section 8.1 (ECDH on the 256-bit random ECP group): i, g^r and g^ir's x. */
#define RFC5903_I "c88f01f510d9ac3f70a292daa2316de544e9aab8afe84049c62a9c57862d1433"
#define RFC5903_GR_SPKI \
    "3059301306072a8648ce3d020106082a8648ce3d03010703420004d12dfb5289c8d4f81208b70270398c342296970a0bccb74c736fc7" \
    "554494bf6356fbf3ca366cc23e8157854c13c58d6aac23f046ada30f8353e74f33039872ab"
#define RFC5903_GIRX "d6840f6b42f6edafd13116e0e12565202fef8e9ece7dce03812464d04b9442de"

static void test_ecdh(void **state)
{
    (void)state;
    /* i as an ECPrivateKey (RFC 5915) without its public key: OpenSSL computes it. */
    EVP_PKEY *i = t_load("ECC_NIST_P256", "30310201010420" RFC5903_I "a00a06082a8648ce3d030107");
    cl_buf gr, want, secret;
    t_hex(&gr, RFC5903_GR_SPKI);
    t_hex(&want, RFC5903_GIRX);
    cl_buf_init_secret(&secret, KMS_SHARED_SECRET_MAX + 1);
    assert_ok(kms_asym_derive(i, gr.data, gr.len, &secret));
    assert_int_equal(secret.len, 32);
    assert_memory_equal(secret.data, want.data, 32);
    /* Both sides of two fresh P-521 keys agree, on 66 bytes. */
    EVP_PKEY *a = t_fresh("ECC_NIST_P521"), *b = t_fresh("ECC_NIST_P521");
    cl_buf pa, pb, sb;
    cl_buf_init(&pa, KMS_PUBLIC_MAX);
    cl_buf_init(&pb, KMS_PUBLIC_MAX);
    cl_buf_init_secret(&sb, KMS_SHARED_SECRET_MAX + 1);
    assert_ok(kms_asym_public_der(a, &pa));
    assert_ok(kms_asym_public_der(b, &pb));
    cl_buf_reset(&secret);
    assert_ok(kms_asym_derive(a, pb.data, pb.len, &secret));
    assert_ok(kms_asym_derive(b, pa.data, pa.len, &sb));
    assert_int_equal(secret.len, 66);
    assert_int_equal(sb.len, 66);
    assert_memory_equal(secret.data, sb.data, 66);
    /* Refused: another curve, an RSA key, not DER, trailing bytes, a point off the curve. */
    cl_buf_reset(&secret);
    assert_fails(kms_asym_derive(i, pa.data, pa.len, &secret), CL_ERR_KEY, "on curve secp521r1, not on this key's");
    cl_buf rsa;
    cl_buf_init(&rsa, KMS_PUBLIC_MAX);
    EVP_PKEY *r = t_load("RSA_2048", RSA2048_DER);
    assert_ok(kms_asym_public_der(r, &rsa));
    assert_fails(kms_asym_derive(i, rsa.data, rsa.len, &secret), CL_ERR_KEY, "not an elliptic curve key");
    assert_fails(kms_asym_derive(i, (const uint8_t *)"InvalidPublicKey", 16, &secret), CL_ERR_FORMAT,
                 "not a DER SubjectPublicKeyInfo");
    assert_fails(kms_asym_derive(i, gr.data, 0, &secret), CL_ERR_FORMAT, "0 bytes");
    assert_ok(cl_buf_append_u8(&gr, 0));
    assert_fails(kms_asym_derive(i, gr.data, gr.len, &secret), CL_ERR_FORMAT, "bytes after");
    cl_buf_truncate(&gr, gr.len - 1);
    uint8_t off[91];
    memcpy(off, gr.data, sizeof(off));
    off[90] ^= 1; /* y + 1: not on the curve */
    assert_fails(kms_asym_derive(i, off, sizeof(off), &secret), CL_ERR_FORMAT, "SubjectPublicKeyInfo");
    assert_int_equal(secret.len, 0);
    /* An RSA private key does no ECDH. */
    assert_fails(kms_asym_derive(r, gr.data, gr.len, &secret), CL_ERR_INTERNAL, "EC private key");
    EVP_PKEY_free(r);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
    EVP_PKEY_free(i);
    cl_buf_free(&rsa);
    cl_buf_free(&pa);
    cl_buf_free(&pb);
    cl_buf_free(&sb);
    cl_buf_free(&gr);
    cl_buf_free(&want);
    cl_buf_free(&secret);
}

/* The PKCS #8 of P256_DER, as Python cryptography 38 writes it (an independent encoder). */
#define P256_PKCS8 \
    "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420f0489d030ab5430dcb4984813e0bfc24c58cc3" \
    "69d46e0237f57fd2affe3785e7a14403420004f2d33df2b21a899d399a51006ccfb5edbe9db86550bddc7e3be199b4b701d804b4c15082" \
    "8209ecf5da56dbd6bdf0c3584208e2d78542585a474665f0169511cd"

static void test_pkcs8(void **state)
{
    (void)state;
    EVP_PKEY *pkey = t_load("ECC_NIST_P256", P256_DER);
    cl_buf der, want;
    cl_buf_init_secret(&der, KMS_PRIVATE_MAX);
    t_hex(&want, P256_PKCS8);
    assert_ok(kms_asym_pkcs8(pkey, &der));
    assert_int_equal(der.len, want.len);
    assert_memory_equal(der.data, want.data, want.len);
    EVP_PKEY_free(pkey);
    /* RSA-4096, the largest: within the bound, and it parses back to the same key. */
    pkey = t_fresh("RSA_4096");
    cl_buf_reset(&der);
    assert_ok(kms_asym_pkcs8(pkey, &der));
    assert_true(der.len > 2300 && der.len <= KMS_PRIVATE_MAX);
    const unsigned char *p = der.data;
    EVP_PKEY *back = d2i_AutoPrivateKey(NULL, &p, (long)der.len);
    assert_non_null(back);
    assert_int_equal(EVP_PKEY_eq(pkey, back), 1);
    EVP_PKEY_free(back);
    EVP_PKEY_free(pkey);
    cl_buf_free(&der);
    cl_buf_free(&want);
}

/* RFC 4231 test case 2 (key "Jefe"), every HMAC spec's digest. */
static void test_hmac(void **state)
{
    (void)state;
    static const struct {
        const char *md, *hex;
    } cases[] = {
        {"SHA224", "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44"},
        {"SHA256", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {"SHA384", "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"},
        {"SHA512", "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcae"
                   "ab1a34d4a6b4b636e070a38bce737"},
    };
    static const char data[] = "what do ya want for nothing?";
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t mac[KMS_MAC_MAX];
        size_t n = 0;
        cl_buf want;
        t_hex(&want, cases[i].hex);
        assert_ok(kms_hmac(cases[i].md, (const uint8_t *)"Jefe", 4, (const uint8_t *)data, sizeof(data) - 1, mac, &n));
        assert_int_equal(n, want.len);
        assert_memory_equal(mac, want.data, n);
        cl_buf_free(&want);
    }
    uint8_t mac[KMS_MAC_MAX];
    size_t n = 0;
    assert_fails(kms_hmac("NOT-A-DIGEST", (const uint8_t *)"k", 1, (const uint8_t *)"m", 1, mac, &n), CL_ERR_CRYPTO,
                 "HMAC with NOT-A-DIGEST failed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_algorithm_tables),
        cmocka_unit_test(test_oaep),
        cmocka_unit_test(test_ecdh),
        cmocka_unit_test(test_pkcs8),
        cmocka_unit_test(test_hmac),
        cmocka_unit_test(test_known_answer_pkcs1),
        cmocka_unit_test(test_sign_verify_every_algorithm),
        cmocka_unit_test(test_load_checks_spec),
        cmocka_unit_test(test_private_wrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
