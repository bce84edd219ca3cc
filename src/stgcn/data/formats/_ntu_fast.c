/* One-pass tokeniser for NTU .skeleton text (see ntu.py, which walks the header counts).
 *
 * tokenize(buf, values, starts, kinds) -> (n, bad_offset, nonfinite)
 * fills the first n items of the caller's writable buffers, n being the number of whitespace-separated
 * tokens of buf (each buffer must hold len(buf) // 2 + 1 items):
 *   values     float64: exactly float(token)
 *   starts     int64: the byte offset where the token starts
 *   kinds      uint8: 1 plain integer ([+-]digits), 0 other number, 2 nan/inf, 3 not a number (NaN)
 * bad_offset is the offset of the first token that is not a number (-1 if none), nonfinite the
 * number of nan/inf tokens.
 * Python's float() costs ~170 ns per token; most NTU tokens ("-0.2831947", "1.234567E-07") have
 * at most 19 significant digits and a small exponent, so mantissa x or / 10^k in double is one
 * correctly rounded operation on exact operands and equals float() bit for bit. Everything else
 * goes to PyOS_string_to_double, the very function float() uses.
 *
 * walk_xyz(buf, counts, ids, values) -> (status, frames, bodies)
 * read_ntu's path: walks the frame/body/joint counts in C and keeps x, y, z of each joint (plus the
 * body fields); the 9 other joint fields are checked but never converted. It takes only files that
 * the fast number path reads whole; status 1 sends anything else to tokenize + ntu.py, which reads
 * it exactly or names what is wrong. Built only with SSE2 (see the walker's section).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

enum { K_NUMBER = 0, K_INT = 1, K_NONFINITE = 2, K_BAD = 3 };

/* Every 10^k for k <= 22 is exactly representable in a double. */
static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Exactly the bytes that bytes.split() treats as whitespace; other control bytes stay inside a token
 * so that it fails to parse instead of silently splitting a number in two. */
static unsigned char IS_WS[256];

#define DIGIT(c) ((unsigned)((c) - '0') < 10u)

#if defined(__GNUC__) || defined(__clang__)
#define CTZ(x) __builtin_ctzll(x)
#else
static int CTZ(uint64_t x) { int k = 0; while (!(x & 1)) x >>= 1, k++; return k; }
#endif

static const uint64_t POW10_U64[9] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};

/* Length (0-8) and value of the run of digits at p, eight bytes at a time instead of a branch per
 * digit (the digit loop's mispredictions were most of the time). Needs 8 readable bytes at p. */
static inline int run8(const unsigned char *p, uint64_t *val)
{
#if PY_LITTLE_ENDIAN
    uint64_t w, nondigit;
    int len = 0;
    memcpy(&w, p, 8);                   /* p[0] in the low byte */
    w ^= 0x3030303030303030ULL;         /* a digit byte becomes 0..9, any other byte >= 10 */
    nondigit = (w | (w + 0x7676767676767676ULL)) & 0x8080808080808080ULL; /* bit 7 set if >= 10 */
    /* A carry out of a byte >= 0x8A only reaches later bytes: the first non-digit is still right. */
    len = nondigit ? CTZ(nondigit) >> 3 : 8;
    if (len == 0) return *val = 0, 0;
    w <<= 8 * (8 - len); /* the run as the last digits of an 8-digit number with leading zeros */
    w = w * 10 + (w >> 8); /* pairs, then quads, then all 8 (fast_float's parse_eight_digits) */
    w = (((w & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32))) +
         (((w >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >> 32;
    *val = (uint32_t)w;
    return len;
#else
    (void)p, (void)val;
    return 8; /* big-endian: "run not finished", the byte-wise loops do the work */
#endif
}

/* Fast path: parses the number starting at p and stops at the first byte that does not belong to
 * it (*stop). The caller accepts the result only when *stop ends the token. Returns -1 when the
 * token needs the exact slow path (more than 19 significant digits, large exponent, nan/inf). */
static int parse_fast(const unsigned char *p, const unsigned char *e, double *out, const unsigned char **stop)
{
    int neg = 0, digits = 0, any = 0, is_int = 1;
    uint64_t m = 0;
    long dexp = 0;
    uint64_t r;
    int len;
    if (*p == '+' || *p == '-') neg = *p++ == '-';
    if (e - p >= 8 && (len = run8(p, &r)) < 8) { /* the usual case: a short integer part */
        m = r, digits = len, any = len > 0, p += len;
    } else {
        for (; p < e && DIGIT(*p); p++, any = 1) {
            if (m == 0 && *p == '0') continue; /* leading zeros are not significant */
            if (++digits > 19) return -1;      /* 19 digits always fit a uint64 */
            m = m * 10 + (uint64_t)(*p - '0');
        }
    }
    if (p < e && *p == '.') {
        is_int = 0;
        p++;
        /* Eight digits at a time ("0.02831947" has eight after the point); leading zeros count as
         * digits here, so a long run of them takes the exact path, which is right, only slower. */
        while (e - p >= 8) {
            len = run8(p, &r);
            if ((digits += len) > 19) return -1;
            m = m * POW10_U64[len] + r, dexp -= len, any |= len > 0, p += len;
            if (len < 8) goto fraction_done;
        }
        for (; p < e && DIGIT(*p); p++, any = 1) {
            dexp--;
            if (m == 0 && *p == '0') continue;
            if (++digits > 19) return -1;
            m = m * 10 + (uint64_t)(*p - '0');
        }
    fraction_done:;
    }
    if (!any) return -1; /* "nan", "inf", "+", ".", garbage: the slow path decides */
    if (p < e && (*p == 'e' || *p == 'E')) {
        long x = 0;
        int xneg = 0;
        is_int = 0;
        p++;
        if (p < e && (*p == '+' || *p == '-')) xneg = *p++ == '-';
        if (p == e || !DIGIT(*p)) return -1;
        for (; p < e && DIGIT(*p); p++)
            if (x < 100000) x = x * 10 + (*p - '0'); /* clamp: far beyond any double's range */
        dexp += xneg ? -x : x;
    }
    *stop = p;
    double v;
    if (m == 0)
        v = 0.0; /* any exponent: float("0e999") == 0.0 */
    else if (dexp == 0 && m < ((uint64_t)1 << 63))
        v = (double)(int64_t)m; /* one correctly rounded conversion */
    else if (m <= ((uint64_t)1 << 53) && dexp >= -22 && dexp <= 22)
        v = dexp < 0 ? (double)m / POW10[-dexp] : (double)m * POW10[dexp];
    else
        return -1;
    *out = neg ? -v : v; /* keeps -0.0 */
    return is_int ? K_INT : K_NUMBER;
}

/* The exact path, with the GIL held (float()'s dtoa keeps global state). */
static int parse_slow(const unsigned char *p, Py_ssize_t n, double *out)
{
    char small[64], *buf = n < (Py_ssize_t)sizeof small ? small : PyMem_Malloc((size_t)n + 1);
    char *end = NULL;
    int kind = K_BAD;
    if (buf == NULL) return K_BAD;
    memcpy(buf, p, (size_t)n);
    buf[n] = '\0';
    /* No overflow exception: "1e999" gives inf, as float() does. */
    double v = PyOS_string_to_double(buf, &end, NULL);
    if (v == -1.0 && PyErr_Occurred())
        PyErr_Clear();
    else if (end == buf + n) {
        *out = v;
        kind = isfinite(v) ? K_NUMBER : K_NONFINITE;
        if (kind == K_NUMBER && (buf[0] == '+' || buf[0] == '-' || DIGIT(buf[0]))) {
            kind = K_INT; /* a long plain integer ("000...0123" or 20+ digits)? */
            for (Py_ssize_t i = 1; i < n; i++)
                if (!DIGIT(buf[i])) kind = K_NUMBER;
        }
    }
    if (buf != small) PyMem_Free(buf);
    return kind;
}

/* Writable buffer of at least `need` bytes, or -1 with an exception. */
static int get_out(PyObject *obj, Py_buffer *view, Py_ssize_t need)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE) < 0) return -1;
    if (view->len >= need) return 0;
    PyBuffer_Release(view);
    PyErr_Format(PyExc_ValueError, "output buffer of %zd bytes, %zd needed", view->len, need);
    return -1;
}

static PyObject *tokenize(PyObject *self, PyObject *args)
{
    PyObject *ov, *os, *ok;
    Py_buffer in, vv, sv, kv;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*OOO:tokenize", &in, &ov, &os, &ok)) return NULL;
    /* The caller's buffers are reused from file to file: fresh memory costs a page fault per 4 KiB
     * (~1.5 us), as much as parsing it. A token and a separator take two bytes: len/2+1 tokens at most. */
    Py_ssize_t cap = in.len / 2 + 1, n = 0, bad = -1, nonfinite = 0;
    if (get_out(ov, &vv, cap * 8) < 0) goto fail_in;
    if (get_out(os, &sv, cap * 8) < 0) goto fail_v;
    if (get_out(ok, &kv, cap) < 0) goto fail_s;
    const unsigned char *b = in.buf, *end = b + in.len;
    double *vals = vv.buf;
    int64_t *st = sv.buf;
    unsigned char *kd = kv.buf;
    const uint64_t nan_bits = 0x7ff8000000000000ULL; /* the quiet NaN float("nan") gives */

    Py_BEGIN_ALLOW_THREADS
    for (const unsigned char *p = b;;) {
        while (p < end && IS_WS[*p]) p++;
        if (p == end) break;
        const unsigned char *s = p;
        double v;
        int kind = parse_fast(s, end, &v, &p);
        if (kind < 0 || (p < end && !IS_WS[*p])) {
            for (p = s; p < end && !IS_WS[*p];) p++;
            Py_BLOCK_THREADS
            kind = parse_slow(s, p - s, &v);
            Py_UNBLOCK_THREADS
        }
        if (kind == K_BAD) {
            memcpy(&v, &nan_bits, sizeof v);
            if (bad < 0) bad = s - b;
        }
        nonfinite += kind == K_NONFINITE;
        vals[n] = v;
        st[n] = s - b;
        kd[n++] = (unsigned char)kind;
    }
    Py_END_ALLOW_THREADS

    PyBuffer_Release(&kv);
    PyBuffer_Release(&sv);
    PyBuffer_Release(&vv);
    PyBuffer_Release(&in);
    return Py_BuildValue("(nnn)", n, bad, nonfinite);
fail_s:
    PyBuffer_Release(&sv);
fail_v:
    PyBuffer_Release(&vv);
fail_in:
    PyBuffer_Release(&in);
    return NULL;
}

/* ---- read_ntu's path: the whole structure walked in C, x, y, z kept ------------------------------ */

/* Only where SSE2 is (every x86-64 compiler; MSVC does not define __SSE2__): without plain_token the
 * walker converts every token and is no faster than tokenize (measured with -U__SSE2__: 18.7x against
 * the ~20x of tokenize), so other platforms keep tokenize and ntu.py sees no walk_xyz. */
#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>

enum { BODY_FIELDS = 9, JOINTS = 25, JOINT_FIELDS = 12, BODY_VALUES = BODY_FIELDS + 3 * JOINTS };

/* Token starts come from a whitespace bitmap built 64 bytes at a time, so no loop runs over the
 * bytes of a token: the 9 joint fields read_ntu does not keep (three quarters of a file) are checked
 * by plain_token from one 16-byte load, which halves the time of a file against converting them. */
typedef struct {
    const unsigned char *buf, *end;
    Py_ssize_t block;   /* offset of the current 64-byte block */
    uint64_t starts;    /* bit i: a token starts at block + i (not yet taken) */
    uint64_t carry;     /* 1 if the last byte of the previous block is whitespace */
} Cursor;

static inline unsigned ws_bits(__m128i x)
{
    __m128i t = _mm_sub_epi8(x, _mm_set1_epi8(9)); /* 9..13 -> 0..4 */
    __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(4)), t);
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(ctl, _mm_cmpeq_epi8(x, _mm_set1_epi8(32))));
}
static inline uint64_t ws16(const unsigned char *p)
{
    return ws_bits(_mm_loadu_si128((const __m128i *)p));
}
/* 1 if the token at s (16 readable bytes) is [+-]digits[.digits] (or "5.", ".5"), shorter than 16
 * bytes: float() reads it, and it is finite. 0 says nothing (parse it to know). Checks the joint
 * fields that read_ntu does not keep for a fraction of the cost of converting them. */
static inline int plain_token(const unsigned char *s)
{
    __m128i x = _mm_loadu_si128((const __m128i *)s);
    unsigned ws = ws_bits(x);
    if (ws == 0) return 0;
    unsigned tok = (ws & (0u - ws)) - 1; /* the bytes before the first whitespace */
    __m128i d = _mm_sub_epi8(x, _mm_set1_epi8('0'));
    unsigned digit = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d)) & tok;
    unsigned dot = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('.'))) & tok;
    unsigned sign = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('-')),
                                                             _mm_cmpeq_epi8(x, _mm_set1_epi8('+')))) & 1u;
    return digit != 0 && (digit | dot | sign) == tok && (dot & (dot - 1)) == 0;
}
static inline uint64_t ws64(const unsigned char *p)
{
    return ws16(p) | ws16(p + 16) << 16 | ws16(p + 32) << 32 | ws16(p + 48) << 48;
}

/* Loads the block at c->block; 0 past the end of the text. */
static inline int load_block(Cursor *c)
{
    Py_ssize_t left = c->end - c->buf - c->block;
    uint64_t w;
    if (left <= 0) return 0;
    if (left >= 64)
        w = ws64(c->buf + c->block);
    else { /* the tail, padded with spaces */
        unsigned char tail[64];
        memset(tail, ' ', sizeof tail);
        memcpy(tail, c->buf + c->block, (size_t)left);
        w = ws64(tail);
    }
    c->starts = ~w & (w << 1 | c->carry);
    c->carry = w >> 63;
    return 1;
}

/* Where the next token starts, or NULL after the last one. */
static inline const unsigned char *next_start(Cursor *c)
{
    while (c->starts == 0) {
        c->block += 64;
        if (!load_block(c)) return NULL;
    }
    const unsigned char *s = c->buf + c->block + CTZ(c->starts);
    c->starts &= c->starts - 1;
    return s;
}

/* The next token through the fast path only: its kind (K_INT or K_NUMBER), -1 when it is anything
 * else (not a number, nan/inf, a token only the exact path reads) or there is none. */
static inline int next_number(Cursor *c, double *v)
{
    const unsigned char *p = next_start(c), *stop;
    if (p == NULL) return -1;
    int kind = parse_fast(p, c->end, v, &stop);
    if (kind < 0 || (stop < c->end && !IS_WS[*stop])) return -1;
    return kind;
}

/* A token that must be a finite number, its value not needed; 0 or -1 as next_number. */
static inline int skip_number(Cursor *c)
{
    const unsigned char *p = next_start(c), *stop;
    double v;
    if (p == NULL) return -1;
    if (c->end - p >= 16 && plain_token(p)) return 0;
    int kind = parse_fast(p, c->end, &v, &stop);
    return kind < 0 || (stop < c->end && !IS_WS[*stop]) ? -1 : 0;
}

/* A count: a plain integer token in [0, 2**53), or -1. */
static inline int64_t next_count(Cursor *c)
{
    double v;
    if (next_number(c, &v) != K_INT || !(v >= 0.0 && v < 9007199254740992.0)) return -1;
    return (int64_t)v;
}

/* A bodyID: [+-] and 1 to 18 digits, read exactly (the IDs are 64-bit, beyond float64); else -1. */
static inline int next_id(Cursor *c, int64_t *out)
{
    const unsigned char *p = next_start(c), *s, *end = c->end;
    int neg = 0;
    int64_t m = 0;
    if (p == NULL) return -1;
    if (*p == '+' || *p == '-') neg = *p++ == '-';
    for (s = p; p < end && DIGIT(*p); p++) m = m * 10 + (*p - '0');
    if (p == s || p - s > 18 || (p < end && !IS_WS[*p])) return -1;
    *out = neg ? -m : m;
    return 0;
}

/* 0 when the text is a well-formed file of plain numbers; then counts[:T] holds the bodies of each
 * frame, ids[:B] the bodyID of each body in file order and values[84 * b:] its 9 body fields then
 * x, y, z of its 25 joints. 1 on anything else (the caller's full tokeniser then reads the file
 * again and names the problem); nothing is ever written past cap_t / cap_b. */
static int walk_file(const unsigned char *buf, Py_ssize_t len, int64_t *counts, Py_ssize_t cap_t,
                     int64_t *ids, double *values, Py_ssize_t cap_b, Py_ssize_t *t_out, Py_ssize_t *b_out)
{
    Cursor c = {buf, buf + len, 0, 0, 1}; /* the start of the text counts as whitespace */
    double v;
    if (!load_block(&c)) return 1;
    int64_t frames = next_count(&c), b = 0;
    if (frames < 0 || frames > cap_t) return 1;
    for (int64_t t = 0; t < frames; t++) {
        int64_t nb = next_count(&c);
        if (nb < 0 || nb > cap_b - b) return 1;
        counts[t] = nb;
        for (; nb > 0; nb--, b++) {
            double *row = values + BODY_VALUES * b;
            if (next_id(&c, &ids[b]) < 0) return 1;
            for (int f = 0; f < BODY_FIELDS; f++)
                if (next_number(&c, row++) < 0) return 1;
            if (next_number(&c, &v) != K_INT || v != JOINTS) return 1;
            for (int j = 0; j < JOINTS; j++) {
                for (int k = 0; k < 3; k++)
                    if (next_number(&c, row++) < 0) return 1;
                for (int k = 3; k < JOINT_FIELDS; k++) /* checked all the same: a bad one is an error */
                    if (skip_number(&c) < 0) return 1;
            }
        }
    }
    if (next_start(&c) != NULL) return 1; /* tokens after the last frame */
    *t_out = (Py_ssize_t)frames;
    *b_out = (Py_ssize_t)b;
    return 0;
}

static PyObject *walk_xyz(PyObject *self, PyObject *args)
{
    PyObject *oc, *oi, *ov;
    Py_buffer in, cv, iv, vv;
    Py_ssize_t frames = 0, bodies = 0;
    int status;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*OOO:walk_xyz", &in, &oc, &oi, &ov)) return NULL;
    if (get_out(oc, &cv, 0) < 0) goto fail_in;
    if (get_out(oi, &iv, 0) < 0) goto fail_c;
    if (get_out(ov, &vv, 0) < 0) goto fail_i;
    {
        Py_ssize_t cap_b = iv.len / 8 < vv.len / (8 * BODY_VALUES) ? iv.len / 8 : vv.len / (8 * BODY_VALUES);
        const unsigned char *b = in.buf;
        Py_BEGIN_ALLOW_THREADS
        status = walk_file(b, in.len, cv.buf, cv.len / 8, iv.buf, vv.buf, cap_b, &frames, &bodies);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&vv);
    PyBuffer_Release(&iv);
    PyBuffer_Release(&cv);
    PyBuffer_Release(&in);
    return Py_BuildValue("(inn)", status, frames, bodies);
fail_i:
    PyBuffer_Release(&iv);
fail_c:
    PyBuffer_Release(&cv);
fail_in:
    PyBuffer_Release(&in);
    return NULL;
}

#define HAVE_WALK_XYZ 1
#endif /* SSE2 */

static PyMethodDef methods[] = {
    {"tokenize", tokenize, METH_VARARGS,
     "tokenize(buf, values, starts, kinds) -> (n, bad_offset, nonfinite); see the module source."},
#ifdef HAVE_WALK_XYZ
    {"walk_xyz", walk_xyz, METH_VARARGS,
     "walk_xyz(buf, counts, ids, values) -> (status, frames, bodies); see the module source."},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ntu_fast", "Fast NTU .skeleton tokeniser.", -1,
                                    methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__ntu_fast(void)
{
    static const unsigned char ws[] = {9, 10, 11, 12, 13, 32};
    for (size_t i = 0; i < sizeof ws; i++) IS_WS[ws[i]] = 1;
    return PyModule_Create(&module);
}
