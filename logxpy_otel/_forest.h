/* The open traces' trees as C data: _trees.TreeNumberer's state and its numbering, with
 * no Python object and no Python API call (stage 1 of "The writer without the GIL",
 * CONTRIBUTING.md). The binding (_speedups.c, ``Forest``) reads each batch's items into
 * ``FItem`` s with the GIL held and calls forest_number; the same functions can run in a
 * thread that does not hold the GIL, once the items come from C (stage 2).
 *
 * Held to _trees.py's Python loop, line for line and state for state, by
 * tests/test_speedups_nesting.py and tests/test_trees.py. Only one thread at a time
 * calls into one Forest (the writer, under its I/O lock): nothing here locks. Numbers
 * are written with _cjson.h's put_digits and float_chars (included before this header;
 * no Python API either).
 *
 * Every function that can fail returns -1 (or NULL): out of memory (``f->nomem`` set), or
 * a callback failed (its own error is the caller's to report). The state is then as the
 * Python loop leaves it when it raises at the same item: the traces the failed
 * forest_number call opened forgotten, the others moved on (the caller restarts them). */
#ifndef LOGXPY_OTEL_FOREST_H
#define LOGXPY_OTEL_FOREST_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The C library's allocator, not Python's raw one: the forest allocates without the GIL,
 * and ``tracemalloc.stop()`` racing such an allocation crashed CPython (seen on 3.11.7,
 * 3.12.1 and 3.13.0: tracemalloc's hook torn down under a thread inside it). Where the C library says how large a
 * block is (glibc), the bytes held are counted (``forest_bytes()``: the tests' leak
 * checks, which tracemalloc no longer sees). */
#if defined(__GLIBC__)
#include <malloc.h>
#define F_COUNTED 1
static size_t f_live_bytes;

static inline void *
f_counted(void *p)
{
    if (p != NULL)
        __atomic_add_fetch(&f_live_bytes, malloc_usable_size(p), __ATOMIC_RELAXED);
    return p;
}

static inline void
f_uncount(void *p)
{
    if (p != NULL)
        __atomic_sub_fetch(&f_live_bytes, malloc_usable_size(p), __ATOMIC_RELAXED);
}

static inline void *
f_realloc(void *p, size_t n)
{
    size_t before = p != NULL ? malloc_usable_size(p) : 0;
    void *q = realloc(p, n);
    if (q != NULL) { /* (on failure p is still held, and still counted) */
        __atomic_sub_fetch(&f_live_bytes, before, __ATOMIC_RELAXED);
        __atomic_add_fetch(&f_live_bytes, malloc_usable_size(q), __ATOMIC_RELAXED);
    }
    return q;
}

#define F_MALLOC(n) f_counted(malloc(n))
#define F_CALLOC(n, size) f_counted(calloc((n), (size)))
#define F_REALLOC(p, n) f_realloc((p), (n))
#define F_FREE(p) (f_uncount(p), free(p))
#else
#define F_COUNTED 0
#define F_MALLOC(n) malloc(n)
#define F_CALLOC(n, size) calloc((n), (size))
#define F_REALLOC(p, n) realloc((p), (n))
#define F_FREE(p) free(p)
#endif

/* ---- output ------------------------------------------------------------------------- */

/* The lines written, in memory the forest grows. */
typedef struct {
    char *data;
    size_t len, cap;
} FOut;

static int
fout_grow(FOut *o, size_t more)
{
    size_t cap = o->cap ? o->cap : 4096;
    while (cap - o->len < more) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    char *data = F_REALLOC(o->data, cap);
    if (data == NULL)
        return -1;
    o->data = data;
    o->cap = cap;
    return 0;
}

static inline int
fout_put(FOut *o, const void *p, size_t n)
{
    if (o->cap - o->len < n && fout_grow(o, n) < 0)
        return -1;
    memcpy(o->data + o->len, p, n);
    o->len += n;
    return 0;
}

#define FOUT_LITERAL(o, text) fout_put((o), (text), sizeof(text) - 1)

static int
fout_decimal(FOut *o, long long value)
{
    char text[24], *end = text + sizeof(text);
    char *p = put_digits(end, value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value);
    if (value < 0)
        *--p = '-';
    return fout_put(o, p, (size_t)(end - p));
}

static const char forest_base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static int
fout_base62(FOut *o, unsigned long long v)
{
    char text[16], *end = text + sizeof(text), *p = end;
    do {
        *--p = forest_base62[v % 62];
        v /= 62;
    } while (v);
    return fout_put(o, p, (size_t)(end - p));
}

/* ---- span actions ------------------------------------------------------------------- */

/* A span's action in a trace's tree (_trees._Action): counted references, from the span
 * map of its trace, from its children (``parent``), from a later action of the same span
 * id (``earlier``), and from the caller while it works on one. */
typedef struct FAction {
    struct FAction *parent;  /* NULL: the trace's root */
    struct FAction *earlier; /* the same span's action still open when this one started */
    struct FAction *freeing; /* the next action to free, while a chain is freed */
    long long next;          /* its next child's number */
    long refs;
    int depth; /* 1 under the root */
    char open;
    size_t prefix_len;
    char prefix[]; /* the lvl prefix of its lines, "2,3," */
} FAction;

/* A new open action under ``parent`` (NULL: the root), its prefix ``above`` then ``own``
 * (its parent's prefix, then its own number and ","). */
static FAction *
faction_new(const char *above, size_t above_len, const char *own, size_t own_len, FAction *parent)
{
    FAction *a = F_MALLOC(sizeof(FAction) + above_len + own_len);
    if (a == NULL)
        return NULL;
    memcpy(a->prefix, above, above_len);
    memcpy(a->prefix + above_len, own, own_len);
    a->prefix_len = above_len + own_len;
    a->parent = parent;
    if (parent != NULL)
        parent->refs++;
    a->earlier = NULL;
    a->freeing = NULL;
    a->next = 2; /* [..., 1] is the start line */
    a->refs = 1; /* the caller's */
    a->depth = parent == NULL ? 1 : parent->depth + 1;
    a->open = 1;
    return a;
}

/* Let go of one reference to ``a``. A chain of parents and earlier actions that only it
 * held is freed in a loop, never one C frame per link (a span id started again and again
 * while open makes a chain as long as that). */
static void
faction_release(FAction *a)
{
    FAction *todo = NULL;
    if (a != NULL && --a->refs == 0) {
        a->freeing = todo;
        todo = a;
    }
    while (todo != NULL) {
        FAction *dead = todo;
        todo = dead->freeing;
        FAction *links[2] = {dead->parent, dead->earlier};
        for (int i = 0; i < 2; i++)
            if (links[i] != NULL && --links[i]->refs == 0) {
                links[i]->freeing = todo;
                todo = links[i];
            }
        F_FREE(dead);
    }
}

/* ---- a trace's span actions by span id, in the order a Python dict keeps ------------- */

typedef struct {
    char *heap_key; /* a key longer than ``inline_key`` holds (ids are 16 hex) */
    size_t key_len;
    uint64_t hash;
    FAction *action; /* a reference */
    long chain;      /* the next entry in its bucket, -1 at the end */
    char inline_key[24];
} FSpanEntry;

#define ENTRY_KEY(e) ((e)->key_len <= sizeof((e)->inline_key) ? (e)->inline_key : (e)->heap_key)

typedef struct {
    const uint64_t *key; /* the forest's hash key */
    FSpanEntry *entries; /* in insertion order (a key set again keeps its place) */
    size_t n, cap;
    long *buckets; /* first entry of each bucket, -1: none */
    size_t n_buckets;
} FSpans;

/* SipHash-1-3 of ``p`` under the 128-bit key ``k`` (what CPython hashes str with): trace
 * and span ids can come from outside (a ``traceparent`` header), and an unkeyed hash would
 * let a client choose ids that all land in one bucket. */
#define FOREST_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define FOREST_SIPROUND(v0, v1, v2, v3)                                                                       \
    do {                                                                                                       \
        v0 += v1;                                                                                              \
        v1 = FOREST_ROTL(v1, 13);                                                                              \
        v1 ^= v0;                                                                                              \
        v0 = FOREST_ROTL(v0, 32);                                                                              \
        v2 += v3;                                                                                              \
        v3 = FOREST_ROTL(v3, 16);                                                                              \
        v3 ^= v2;                                                                                              \
        v0 += v3;                                                                                              \
        v3 = FOREST_ROTL(v3, 21);                                                                              \
        v3 ^= v0;                                                                                              \
        v2 += v1;                                                                                              \
        v1 = FOREST_ROTL(v1, 17);                                                                              \
        v1 ^= v2;                                                                                              \
        v2 = FOREST_ROTL(v2, 32);                                                                              \
    } while (0)

static uint64_t
forest_hash(const uint64_t k[2], const char *p, size_t n)
{
    uint64_t v0 = k[0] ^ 0x736f6d6570736575ULL, v1 = k[1] ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k[0] ^ 0x6c7967656e657261ULL, v3 = k[1] ^ 0x7465646279746573ULL;
    const unsigned char *in = (const unsigned char *)p;
    size_t left = n;
    for (; left >= 8; in += 8, left -= 8) {
        uint64_t m;
        memcpy(&m, in, 8); /* (SipHash reads little-endian; a big-endian machine gets another keyed hash) */
        v3 ^= m;
        FOREST_SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    uint64_t last = (uint64_t)n << 56;
    for (size_t i = 0; i < left; i++)
        last |= (uint64_t)in[i] << (8 * i);
    v3 ^= last;
    FOREST_SIPROUND(v0, v1, v2, v3);
    v0 ^= last;
    v2 ^= 0xff;
    FOREST_SIPROUND(v0, v1, v2, v3);
    FOREST_SIPROUND(v0, v1, v2, v3);
    FOREST_SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

static void
fspans_free(FSpans *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        F_FREE(s->entries[i].heap_key);
        faction_release(s->entries[i].action);
    }
    F_FREE(s->entries);
    F_FREE(s->buckets);
    F_FREE(s);
}

/* Index the entries in ``n_buckets`` buckets (a power of two). Where no memory is left
 * for a new array, the old one is indexed again at its own size: the index always
 * matches the entries, and only -1 for a first index says it could not be made. */
static int
fspans_index(FSpans *s, size_t n_buckets)
{
    long *buckets = F_MALLOC(n_buckets * sizeof(long));
    int rc = 0;
    if (buckets == NULL) {
        if (s->buckets == NULL)
            return -1;
        buckets = s->buckets;
        n_buckets = s->n_buckets;
        rc = -1;
    }
    for (size_t i = 0; i < n_buckets; i++)
        buckets[i] = -1;
    for (size_t i = 0; i < s->n; i++) {
        size_t b = (size_t)(s->entries[i].hash & (n_buckets - 1));
        s->entries[i].chain = buckets[b];
        buckets[b] = (long)i;
    }
    if (buckets != s->buckets)
        F_FREE(s->buckets);
    s->buckets = buckets;
    s->n_buckets = n_buckets;
    return rc;
}

static FSpans *
fspans_new(const uint64_t *key)
{
    FSpans *s = F_CALLOC(1, sizeof(FSpans));
    if (s == NULL)
        return NULL;
    s->key = key;
    if (fspans_index(s, 8) < 0) {
        F_FREE(s);
        return NULL;
    }
    return s;
}

static FSpanEntry *
fspans_find(const FSpans *s, const char *key, size_t key_len, uint64_t hash)
{
    for (long i = s->buckets[hash & (s->n_buckets - 1)]; i >= 0; i = s->entries[i].chain) {
        FSpanEntry *e = &s->entries[i];
        if (e->hash == hash && e->key_len == key_len && memcmp(ENTRY_KEY(e), key, key_len) == 0)
            return e;
    }
    return NULL;
}

/* The action of ``key`` (borrowed), or NULL. */
static inline FAction *
fspans_get(const FSpans *s, const char *key, size_t key_len)
{
    FSpanEntry *e = fspans_find(s, key, key_len, forest_hash(s->key, key, key_len));
    return e == NULL ? NULL : e->action;
}

/* spans[key] = action (a new reference is taken): in place where the key is there. */
static int
fspans_set(FSpans *s, const char *key, size_t key_len, FAction *action)
{
    uint64_t hash = forest_hash(s->key, key, key_len);
    FSpanEntry *e = fspans_find(s, key, key_len, hash);
    action->refs++;
    if (e != NULL) {
        FAction *old = e->action;
        e->action = action;
        faction_release(old);
        return 0;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        FSpanEntry *entries = F_REALLOC(s->entries, cap * sizeof(FSpanEntry));
        if (entries == NULL)
            goto fail;
        s->entries = entries;
        s->cap = cap;
    }
    e = &s->entries[s->n];
    e->key_len = key_len;
    e->heap_key = NULL;
    if (key_len > sizeof(e->inline_key) && (e->heap_key = F_MALLOC(key_len)) == NULL)
        goto fail;
    memcpy(ENTRY_KEY(e), key, key_len);
    e->hash = hash;
    e->action = action;
    size_t b = (size_t)(hash & (s->n_buckets - 1));
    e->chain = s->buckets[b];
    s->buckets[b] = (long)s->n;
    s->n++;
    if (s->n > s->n_buckets)
        (void)fspans_index(s, 2 * s->n_buckets); /* (where it cannot grow: longer chains, still right) */
    return 0;
fail:
    faction_release(action);
    return -1;
}

/* Forget the first ``forget`` ended actions, in insertion order (_Trace.end's prune). */
static int
fspans_forget(FSpans *s, long long forget)
{
    size_t kept = 0;
    for (size_t i = 0; i < s->n; i++) {
        FSpanEntry *e = &s->entries[i];
        if (!e->action->open && forget > 0) {
            forget--;
            F_FREE(e->heap_key);
            faction_release(e->action);
            continue;
        }
        if (kept != i)
            s->entries[kept] = *e;
        kept++;
    }
    s->n = kept;
    size_t n_buckets = s->n_buckets;
    while (n_buckets > 8 && n_buckets / 4 > kept)
        n_buckets /= 2;
    (void)fspans_index(s, n_buckets); /* (indexes the kept entries, at the old size if need be) */
    return 0;
}

/* ---- traces ------------------------------------------------------------------------- */

/* One open trace (_trees._Trace). */
typedef struct FTrace {
    struct FTrace *chain;      /* the next trace in its hash bucket */
    struct FTrace *prev, *next; /* least recently used first */
    uint64_t hash;
    double last_ts;   /* the greatest record ts: its end line's */
    double last_seen; /* the clock when a line of it was last numbered */
    long long next_lvl;
    long long open_spans;
    int failed;
    unsigned long long opened_in; /* the forest_number call that opened it */
    FSpans *spans; /* NULL: no span line seen (None) */
    size_t tid_len, head_len;
    char *head;  /* {"tid":"<trace id><token>","lvl":[ */
    char tid[]; /* the trace id, then the head */
} FTrace;

/* Where a batch's strings come from (the binding's objects, alive during the call). */
typedef struct {
    const char *tid; /* NULL: a record outside any trace (a task of its own) */
    size_t tid_len;
    double ts;
    int failed;
    const char *body, *tail;
    size_t body_len, tail_len;
    const char *span; /* NULL: None */
    size_t span_len;
    int role;           /* 0: a record; 1: a span's start (SpanStart); 2: its end (SpanEnd) */
    const char *parent; /* the role's parent span, NULL: None */
    size_t parent_len;
} FItem;

#define FOREST_RECORD 0
#define FOREST_START 1
#define FOREST_END 2

/* Callbacks the binding gives: a span end's start line body (SpanEnd.start_body) for
 * item ``index``, and a float's text where float_chars declines it (orjson's). 0 or -1. */
typedef int (*FStartBody)(void *ctx, size_t index, FOut *out);
typedef int (*FFloatText)(void *ctx, double value, FOut *out);

typedef struct {
    uint64_t key[2]; /* the ids' hash key (random per forest) */
    FTrace **buckets;
    size_t n_buckets, count;
    FTrace *oldest, *newest; /* the LRU list */
    char *token;             /* "~" + the writer's token */
    size_t token_len;
    char *trace_token; /* the token of traces opened from now on: token, or token-<restarts> */
    size_t trace_token_len;
    long long restarts;
    char *task_head; /* {"tid":"<token>. */
    size_t task_head_len;
    unsigned long long task_count;
    unsigned long long calls; /* forest_number calls so far */
    size_t max_open;
    double idle;
    int max_depth;
    int nomem;           /* a failure was for want of memory */
    FFloatText float_text; /* set by the caller before each call */
    FStartBody start_body;
    void *ctx;
} Forest;

static int
forest_float(Forest *f, double value, FOut *out)
{
    char text[FLOAT_CHARS_MAX], *end = text + sizeof(text);
    char *p = float_chars(value, end);
    if (p != NULL)
        return fout_put(out, p, (size_t)(end - p)) < 0 ? (f->nomem = 1, -1) : 0;
    return f->float_text(f->ctx, value, out);
}

static FTrace *
forest_find(const Forest *f, const char *tid, size_t tid_len, uint64_t hash)
{
    for (FTrace *t = f->buckets[hash & (f->n_buckets - 1)]; t != NULL; t = t->chain)
        if (t->hash == hash && t->tid_len == tid_len && memcmp(t->tid, tid, tid_len) == 0)
            return t;
    return NULL;
}

static void
forest_lru_unlink(Forest *f, FTrace *t)
{
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        f->oldest = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    else
        f->newest = t->prev;
    t->prev = t->next = NULL;
}

static void
forest_lru_append(Forest *f, FTrace *t)
{
    t->prev = f->newest;
    t->next = NULL;
    if (f->newest != NULL)
        f->newest->next = t;
    else
        f->oldest = t;
    f->newest = t;
}

/* Take ``t`` out of the forest and free it (its actions with it). */
static void
forest_drop(Forest *f, FTrace *t)
{
    FTrace **link = &f->buckets[t->hash & (f->n_buckets - 1)];
    while (*link != t)
        link = &(*link)->chain;
    *link = t->chain;
    forest_lru_unlink(f, t);
    f->count--;
    fspans_free(t->spans);
    F_FREE(t);
}

static int
forest_rehash(Forest *f, size_t n_buckets)
{
    FTrace **buckets = F_CALLOC(n_buckets, sizeof(FTrace *));
    if (buckets == NULL)
        return -1;
    for (FTrace *t = f->oldest; t != NULL; t = t->next) {
        size_t b = (size_t)(t->hash & (n_buckets - 1));
        t->chain = buckets[b];
        buckets[b] = t;
    }
    F_FREE(f->buckets);
    f->buckets = buckets;
    f->n_buckets = n_buckets;
    return 0;
}

static int
forest_set_token(Forest *f, const char *token, size_t len)
{
    char *copy = F_MALLOC(len ? len : 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, token, len);
    F_FREE(f->trace_token);
    f->trace_token = copy;
    f->trace_token_len = len;
    return 0;
}

/* A forest: ``token`` is "~" + the writer's token, ``task_head`` the start of a task
 * line's tid, ``key`` 16 random bytes for the ids' hash. NULL: no memory. */
static Forest *
forest_new(const char *token, size_t token_len, const char *task_head, size_t task_head_len, size_t max_open,
           double idle, int max_depth, const unsigned char key[16])
{
    Forest *f = F_CALLOC(1, sizeof(Forest));
    if (f == NULL)
        return NULL;
    memcpy(f->key, key, 16);
    f->token = F_MALLOC(token_len ? token_len : 1);
    f->task_head = F_MALLOC(task_head_len ? task_head_len : 1);
    if (f->token == NULL || f->task_head == NULL || forest_rehash(f, 64) < 0 ||
        forest_set_token(f, token, token_len) < 0) {
        F_FREE(f->token);
        F_FREE(f->task_head);
        F_FREE(f->buckets);
        F_FREE(f->trace_token);
        F_FREE(f);
        return NULL;
    }
    memcpy(f->token, token, token_len);
    f->token_len = token_len;
    memcpy(f->task_head, task_head, task_head_len);
    f->task_head_len = task_head_len;
    f->max_open = max_open;
    f->idle = idle;
    f->max_depth = max_depth;
    return f;
}

static void
forest_free(Forest *f)
{
    if (f == NULL)
        return;
    while (f->oldest != NULL)
        forest_drop(f, f->oldest);
    F_FREE(f->buckets);
    F_FREE(f->token);
    F_FREE(f->trace_token);
    F_FREE(f->task_head);
    F_FREE(f);
}

/* The token with the next count for the traces opened from now on (_new_trace_token). */
static int
forest_new_trace_token(Forest *f)
{
    FOut o = {0};
    if (fout_put(&o, f->token, f->token_len) < 0 || FOUT_LITERAL(&o, "-") < 0 ||
        fout_base62(&o, (unsigned long long)f->restarts + 1) < 0) {
        F_FREE(o.data);
        f->nomem = 1;
        return -1;
    }
    f->restarts++;
    F_FREE(f->trace_token);
    f->trace_token = o.data;
    f->trace_token_len = o.len;
    return 0;
}

/* Write ``t``'s end line (TreeNumberer._close); it stays in the forest (the caller drops it). */
static int
forest_close(Forest *f, FTrace *t, FOut *out)
{
    if (t->open_spans && forest_new_trace_token(f) < 0)
        return -1;
    if (fout_put(out, t->head, t->head_len) < 0 || fout_decimal(out, t->next_lvl) < 0 ||
        FOUT_LITERAL(out, "],\"ts\":") < 0) {
        f->nomem = 1;
        return -1;
    }
    if (forest_float(f, t->last_ts, out) < 0)
        return -1;
    if (FOUT_LITERAL(out, ",\"at\":\"otel:trace\",\"st\":\"") < 0 ||
        (t->failed ? FOUT_LITERAL(out, "failed") : FOUT_LITERAL(out, "succeeded")) < 0 ||
        FOUT_LITERAL(out, "\"}\n") < 0) {
        f->nomem = 1;
        return -1;
    }
    return 0;
}

/* Close and drop the least recently used trace. */
static int
forest_close_oldest(Forest *f, FOut *out)
{
    FTrace *t = f->oldest;
    int rc = forest_close(f, t, out);
    forest_drop(f, t); /* (gone even when its end line failed, as popitem then _close) */
    return rc;
}

/* Open a trace (TreeNumberer._open_trace): close the least recently used one first when
 * ``max_open`` are open; the new one's start line. */
static FTrace *
forest_open(Forest *f, const char *tid, size_t tid_len, uint64_t hash, double ts, double now, FOut *out)
{
    if (f->count >= f->max_open && f->count > 0 && forest_close_oldest(f, out) < 0)
        return NULL;
    size_t head_len = 8 + tid_len + f->trace_token_len + 9;
    FTrace *t = F_MALLOC(sizeof(FTrace) + tid_len + head_len);
    if (t == NULL) {
        f->nomem = 1;
        return NULL;
    }
    memset(t, 0, sizeof(FTrace));
    memcpy(t->tid, tid, tid_len);
    t->tid_len = tid_len;
    t->head = t->tid + tid_len;
    t->head_len = head_len;
    char *p = t->head;
    memcpy(p, "{\"tid\":\"", 8);
    memcpy(p + 8, tid, tid_len);
    memcpy(p + 8 + tid_len, f->trace_token, f->trace_token_len);
    memcpy(p + 8 + tid_len + f->trace_token_len, "\",\"lvl\":[", 9);
    t->hash = hash;
    t->opened_in = f->calls;
    t->next_lvl = 2;
    t->last_ts = ts;
    t->last_seen = now;
    size_t b = (size_t)(hash & (f->n_buckets - 1));
    t->chain = f->buckets[b];
    f->buckets[b] = t;
    forest_lru_append(f, t);
    f->count++;
    if (f->count > f->n_buckets)
        (void)forest_rehash(f, 2 * f->n_buckets); /* (a longer chain where it cannot grow) */
    if (fout_put(out, t->head, head_len) < 0 || FOUT_LITERAL(out, "1],\"ts\":") < 0) {
        f->nomem = 1;
        return NULL;
    }
    if (forest_float(f, ts, out) < 0)
        return NULL;
    if (FOUT_LITERAL(out, ",\"at\":\"otel:trace\",\"st\":\"started\"}\n") < 0) {
        f->nomem = 1;
        return NULL;
    }
    return t;
}

/* The open action a line of ``span`` goes under: that span's, else its nearest open
 * ancestor's; NULL for the root (borrowed). */
static FAction *
forest_action_of(const FTrace *t, const char *span, size_t span_len)
{
    if (t->spans == NULL || span == NULL)
        return NULL;
    FAction *a = fspans_get(t->spans, span, span_len);
    while (a != NULL && !a->open)
        a = a->parent;
    return a;
}

/* The next lvl under ``parent`` (NULL: the root), taken, without its "]". */
static int
forest_place(FTrace *t, FAction *parent, FOut *out)
{
    if (parent == NULL)
        return fout_decimal(out, t->next_lvl++);
    if (fout_put(out, parent->prefix, parent->prefix_len) < 0)
        return -1;
    return fout_decimal(out, parent->next++);
}

/* Open ``span``'s action under ``parent``'s (_Trace.start): a new reference. */
static FAction *
forest_start(Forest *f, FTrace *t, const char *span, size_t span_len, const char *parent, size_t parent_len)
{
    FAction *under = forest_action_of(t, parent, parent_len);
    while (under != NULL && (under->depth >= f->max_depth || !under->open))
        under = under->parent; /* (too deep: the nearest open ancestor above the bound) */
    /* Its prefix: the place forest_place takes ("2,3," + its number), then ",". */
    long long number = under == NULL ? t->next_lvl++ : under->next++; /* (from 2 up) */
    char digits[24], *end = digits + sizeof(digits);
    end[-1] = ',';
    char *p = put_digits(end - 1, (unsigned long long)number);
    size_t own = (size_t)(end - p), above = under == NULL ? 0 : under->prefix_len;
    FAction *a = faction_new(under == NULL ? "" : under->prefix, above, p, own, under);
    if (a == NULL) {
        f->nomem = 1;
        return NULL;
    }
    if (t->spans == NULL && (t->spans = fspans_new(f->key)) == NULL)
        goto fail;
    if (span != NULL) {
        FAction *earlier = fspans_get(t->spans, span, span_len);
        if (earlier != NULL && earlier->open) {
            a->earlier = earlier;
            earlier->refs++;
        }
        if (fspans_set(t->spans, span, span_len, a) < 0)
            goto fail;
    }
    t->open_spans++;
    return a;
fail:
    faction_release(a);
    f->nomem = 1;
    return NULL;
}

/* ``a`` (``span``'s) has ended (_Trace.end). */
static int
forest_end_action(Forest *f, FTrace *t, const char *span, size_t span_len, FAction *a, long long remembered)
{
    a->open = 0;
    t->open_spans--;
    FAction *earlier = a->earlier;
    a->earlier = NULL;
    if (t->spans == NULL || span == NULL) {
        faction_release(earlier);
        return 0;
    }
    int rc = 0;
    if (earlier != NULL && earlier->open && fspans_get(t->spans, span, span_len) == a)
        rc = fspans_set(t->spans, span, span_len, earlier);
    faction_release(earlier);
    long long held = (long long)t->spans->n;
    if (rc == 0 && held > remembered && held > 2 * t->open_spans)
        rc = fspans_forget(t->spans, held - t->open_spans - remembered / 2);
    if (rc < 0)
        f->nomem = 1;
    return rc;
}

/* A span's end line, after its start line where this tree has not seen it
 * (TreeNumberer._end_span). 1: that closed the trace (the caller drops it); 0; -1. */
static int
forest_end_span(Forest *f, FTrace *t, const FItem *it, size_t index, long long remembered, FOut *out)
{
    FAction *a = t->spans != NULL && it->span != NULL ? fspans_get(t->spans, it->span, it->span_len) : NULL;
    if (a != NULL && a->open) {
        a->refs++;
    }
    else {
        a = forest_start(f, t, it->span, it->span_len, it->parent, it->parent_len);
        if (a == NULL)
            return -1;
        if (fout_put(out, t->head, t->head_len) < 0 || fout_put(out, a->prefix, a->prefix_len) < 0 ||
            FOUT_LITERAL(out, "1],") < 0)
            goto nomem;
        if (f->start_body(f->ctx, index, out) < 0)
            goto fail;
        if (FOUT_LITERAL(out, "\n") < 0)
            goto nomem;
    }
    if (fout_put(out, t->head, t->head_len) < 0 || forest_place(t, a, out) < 0 || FOUT_LITERAL(out, "],") < 0 ||
        fout_put(out, it->body, it->body_len) < 0 || fout_put(out, it->tail, it->tail_len) < 0 ||
        FOUT_LITERAL(out, "\n") < 0)
        goto nomem;
    int rc = forest_end_action(f, t, it->span, it->span_len, a, remembered);
    faction_release(a);
    if (rc < 0)
        return -1;
    if (t->open_spans)
        return 0;
    return forest_close(f, t, out) < 0 ? -1 : 1;
nomem:
    f->nomem = 1;
fail:
    faction_release(a);
    return -1;
}

/* Number ``items`` (TreeNumberer.number): their lines, and the structure lines they
 * bring, appended to ``out``. How many were span lines; -1 on failure. */
static long long
forest_number(Forest *f, const FItem *items, size_t n, double now, long long remembered, FOut *out)
{
    FTrace *last = NULL;
    long long spans = 0;
    f->calls++;
    for (size_t i = 0; i < n; i++) {
        const FItem *it = &items[i];
        if (it->tid == NULL) { /* a record outside any trace: a task of its own */
            if (fout_put(out, f->task_head, f->task_head_len) < 0 || fout_base62(out, ++f->task_count) < 0 ||
                FOUT_LITERAL(out, "\",\"lvl\":[1],") < 0 || fout_put(out, it->body, it->body_len) < 0 ||
                fout_put(out, it->tail, it->tail_len) < 0 || FOUT_LITERAL(out, "\n") < 0)
                goto nomem;
            continue;
        }
        FTrace *t;
        if (last != NULL && last->tid_len == it->tid_len && memcmp(last->tid, it->tid, it->tid_len) == 0) {
            t = last; /* runs of one trace: it is already the most recently used */
        }
        else {
            uint64_t hash = forest_hash(f->key, it->tid, it->tid_len);
            t = forest_find(f, it->tid, it->tid_len, hash);
            if (t == NULL) {
                if ((t = forest_open(f, it->tid, it->tid_len, hash, it->ts, now, out)) == NULL)
                    goto fail;
            }
            else if (t != f->newest) {
                forest_lru_unlink(f, t);
                forest_lru_append(f, t);
            }
            last = t;
        }
        t->last_seen = now;
        if (it->ts > t->last_ts) /* the end line carries the greatest ts (never before the start) */
            t->last_ts = it->ts;
        if (it->failed)
            t->failed = 1;
        if (it->role == FOREST_RECORD) {
            if (fout_put(out, t->head, t->head_len) < 0 ||
                forest_place(t, forest_action_of(t, it->span, it->span_len), out) < 0 ||
                FOUT_LITERAL(out, "],") < 0 || fout_put(out, it->body, it->body_len) < 0 ||
                fout_put(out, it->tail, it->tail_len) < 0 || FOUT_LITERAL(out, "\n") < 0)
                goto nomem;
        }
        else if (it->role == FOREST_START) {
            spans++;
            FAction *a = forest_start(f, t, it->span, it->span_len, it->parent, it->parent_len);
            if (a == NULL)
                goto fail;
            int rc = fout_put(out, t->head, t->head_len) < 0 || fout_put(out, a->prefix, a->prefix_len) < 0 ||
                     FOUT_LITERAL(out, "1],") < 0 || fout_put(out, it->body, it->body_len) < 0 ||
                     fout_put(out, it->tail, it->tail_len) < 0 || FOUT_LITERAL(out, "\n") < 0;
            faction_release(a);
            if (rc)
                goto nomem;
        }
        else {
            spans++;
            int closed = forest_end_span(f, t, it, i, remembered, out);
            if (closed < 0)
                goto fail;
            if (closed) { /* its last span ended: the trace's tree is complete */
                forest_drop(f, t);
                last = NULL;
            }
        }
    }
    return spans;
nomem:
    f->nomem = 1;
fail:
    /* The lines numbered so far are not written: the traces this call opened have none in
     * the file, and are forgotten (the others moved on without their lines: the caller
     * closes them, forest_close_all, and takes a new token). */
    for (FTrace *t = f->oldest, *next; t != NULL; t = next) {
        next = t->next;
        if (t->opened_in == f->calls)
            forest_drop(f, t);
    }
    return -1;
}

/* Close every trace with no line for ``idle`` (TreeNumberer.close_idle). */
static int
forest_close_idle(Forest *f, double now, FOut *out)
{
    double limit = now - f->idle;
    for (size_t left = f->count; left > 0 && f->oldest != NULL; left--) { /* each looked at once at most */
        FTrace *t = f->oldest;
        if (t->last_seen > limit)
            break;
        if (t->open_spans) {
            /* A span still open is the trace still running: it stays, as if just seen. */
            t->last_seen = now;
            forest_lru_unlink(f, t);
            forest_lru_append(f, t);
            continue;
        }
        if (forest_close_oldest(f, out) < 0)
            return -1;
    }
    return 0;
}

/* Close every open trace, least recently used first (TreeNumberer.close_all). */
static int
forest_close_all(Forest *f, FOut *out)
{
    while (f->oldest != NULL)
        if (forest_close_oldest(f, out) < 0)
            return -1;
    return 0;
}

#endif /* LOGXPY_OTEL_FOREST_H */
