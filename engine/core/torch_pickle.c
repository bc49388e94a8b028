/* The restricted unpickler and torch.save's zip layout; see torch_pickle.h.
 *
 * The opcodes follow Python's Lib/pickletools.py (their names below are its
 * names); the objects follow torch/serialization.py (_save's persistent_id,
 * _load's persistent_load) and torch/_utils.py (_rebuild_tensor_v2,
 * _rebuild_parameter). Objects live in one growing array and refer to each
 * other by index, so the memo and containers share them as Python does, and
 * nothing recurses over the pickle's structure. */
#include "engine/core/torch_pickle.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/core/zip_read.h"

typedef enum pk_kind {
    PK_NONE,
    PK_BOOL,
    PK_INT,
    PK_FLOAT,
    PK_STR, /* str and bytes alike */
    PK_TUPLE,
    PK_LIST,
    PK_DICT, /* items: key, value, key, value, ... */
    PK_GLOBAL,
    PK_STORAGE,
    PK_TENSOR,
} pk_kind;

static const char *const pk_kind_names[] = {"None", "bool", "int",    "float",   "str",   "tuple",
                                            "list", "dict", "global", "storage", "tensor"};

/* The globals a state dict needs. */
typedef enum pk_global {
    G_ORDERED_DICT,
    G_REBUILD_TENSOR,
    G_REBUILD_PARAMETER,
    G_STORAGE, /* a torch.<Type>Storage class */
} pk_global;

typedef struct pk_storage_type {
    const char *name;
    int dtype;     /* cnet_dtype, or -1: no cnet type (the tensor is left out) */
    size_t elsize; /* bytes per element */
} pk_storage_type;

static const pk_storage_type storage_types[] = {
    {"FloatStorage", CNET_F32, 4},     {"HalfStorage", CNET_F16, 2},
    {"BFloat16Storage", CNET_BF16, 2}, {"LongStorage", CNET_I64, 8},
    {"ByteStorage", CNET_U8, 1},       {"BoolStorage", CNET_U8, 1},
    {"DoubleStorage", -1, 8},          {"IntStorage", -1, 4},
    {"ShortStorage", -1, 2},           {"CharStorage", -1, 1},
    {"ComplexFloatStorage", -1, 8},    {"ComplexDoubleStorage", -1, 16},
};
#define N_STORAGE_TYPES ((int)(sizeof storage_types / sizeof storage_types[0]))

typedef struct pk_obj {
    pk_kind kind;
    int64_t i;      /* bool/int value; GLOBAL: pk_global; STORAGE: numel */
    double f;       /* FLOAT */
    char *s;        /* STR (NUL-terminated copy) */
    size_t len;     /* of s */
    int *items;     /* TUPLE/LIST/DICT */
    int n, cap;     /* items used / allocated */
    int type;       /* GLOBAL G_STORAGE and STORAGE: index into storage_types */
    int storage;    /* TENSOR: object index of its storage; STORAGE: of its key (a STR,
                     * shared: a key repeated by the memo is never copied) */
    int64_t offset; /* TENSOR: in elements */
    int ndim;       /* TENSOR */
    int64_t shape[CNET_MAX_DIMS], stride[CNET_MAX_DIMS];
} pk_obj;

typedef struct pk {
    const char *path;
    const unsigned char *p;
    size_t len, pos;
    pk_obj *objs;
    int n_objs, cap_objs;
    int *stack;
    int sp, cap_stack;
    int marks[TORCH_PICKLE_MAX_MARKS];
    int n_marks;
    int *memo;               /* object index + 1; 0 = unset */
    size_t cap_memo, n_memo; /* n_memo: indices set, MEMOIZE's next index */
    cnet_error *err;
} pk;

static int pk_fail(pk *u, int code, const char *what) {
    return cnet_fail(u->err, code, "%s: data.pkl at byte %zu: %s", u->path, u->pos, what);
}

static void pk_free(pk *u) {
    for (int i = 0; i < u->n_objs; i++) {
        free(u->objs[i].s);
        free(u->objs[i].items);
    }
    free(u->objs);
    free(u->stack);
    free(u->memo);
}

/* A new object of kind; its index, or a negative status. */
static int pk_new(pk *u, pk_kind kind) {
    if (u->n_objs == u->cap_objs) {
        if ((unsigned)u->n_objs >= TORCH_PICKLE_MAX_OBJECTS)
            return cnet_fail(u->err, CNET_ELIMIT, "%s: data.pkl builds more than %u objects",
                             u->path, TORCH_PICKLE_MAX_OBJECTS);
        int cap = u->cap_objs ? 2 * u->cap_objs : 256;
        pk_obj *o = realloc(u->objs, (size_t)cap * sizeof *o);
        if (!o) return pk_fail(u, CNET_ENOMEM, "out of memory");
        u->objs = o;
        u->cap_objs = cap;
    }
    memset(&u->objs[u->n_objs], 0, sizeof u->objs[0]);
    u->objs[u->n_objs].kind = kind;
    return u->n_objs++;
}

static int pk_push(pk *u, int idx) {
    if (idx < 0) return idx;
    if (u->sp == u->cap_stack) {
        if ((unsigned)u->sp >= TORCH_PICKLE_MAX_STACK)
            return cnet_fail(u->err, CNET_ELIMIT, "%s: data.pkl's stack exceeds %u values", u->path,
                             TORCH_PICKLE_MAX_STACK);
        int cap = u->cap_stack ? 2 * u->cap_stack : 256;
        int *s = realloc(u->stack, (size_t)cap * sizeof *s);
        if (!s) return pk_fail(u, CNET_ENOMEM, "out of memory");
        u->stack = s;
        u->cap_stack = cap;
    }
    u->stack[u->sp++] = idx;
    return 0;
}

/* The bottom of the values a MARK opened (the stack above the mark). */
static int pk_floor(const pk *u) { return u->n_marks ? u->marks[u->n_marks - 1] : 0; }

static int pk_pop(pk *u, int *idx) {
    if (u->sp <= pk_floor(u)) return pk_fail(u, CNET_EFORMAT, "stack underflow");
    *idx = u->stack[--u->sp];
    return 0;
}

static int pk_append(pk *u, int container, int item) {
    pk_obj *c = &u->objs[container];
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 4;
        int *it = realloc(c->items, (size_t)cap * sizeof *it);
        if (!it) return pk_fail(u, CNET_ENOMEM, "out of memory");
        c->items = it;
        c->cap = cap;
    }
    c->items[c->n++] = item;
    return 0;
}

/* n bytes of the pickle at the cursor, advancing it. */
static int pk_take(pk *u, size_t n, const unsigned char **out) {
    if (n > u->len - u->pos)
        return pk_fail(u, CNET_EFORMAT, "truncated (an argument runs past the end)");
    *out = u->p + u->pos;
    u->pos += n;
    return 0;
}

static int pk_uint(pk *u, int bytes, uint64_t *v) {
    const unsigned char *b = NULL;
    int rc = pk_take(u, (size_t)bytes, &b);
    if (rc) return rc;
    *v = 0;
    for (int i = bytes - 1; i >= 0; i--) *v = *v << 8 | b[i];
    return 0;
}

static int pk_string(pk *u, uint64_t n) {
    if (n > TORCH_PICKLE_MAX_STRING) return pk_fail(u, CNET_ELIMIT, "a string over 1 MiB");
    const unsigned char *b = NULL;
    int rc = pk_take(u, (size_t)n, &b);
    if (rc) return rc;
    int o = pk_new(u, PK_STR);
    if (o < 0) return o;
    if (!(u->objs[o].s = malloc((size_t)n + 1))) return pk_fail(u, CNET_ENOMEM, "out of memory");
    memcpy(u->objs[o].s, b, (size_t)n);
    u->objs[o].s[n] = 0;
    u->objs[o].len = (size_t)n;
    return pk_push(u, o);
}

/* A line ending in '\n' (GLOBAL's operands), without the newline. */
static int pk_line(pk *u, char *buf, size_t cap) {
    const unsigned char *start = u->p + u->pos;
    const unsigned char *nl = memchr(start, '\n', u->len - u->pos);
    if (!nl) return pk_fail(u, CNET_EFORMAT, "truncated (a line without its newline)");
    size_t n = (size_t)(nl - start);
    if (n >= cap) return pk_fail(u, CNET_ELIMIT, "a global's name is too long");
    memcpy(buf, start, n);
    buf[n] = 0;
    u->pos += n + 1;
    return 0;
}

/* Resolves module.name against the allow list; anything else is refused by
 * name. Nothing is imported or called: the result is a tag. */
static int pk_global_push(pk *u, const char *module, const char *name) {
    int which = -1, type = -1;
    if (strcmp(module, "collections") == 0 && strcmp(name, "OrderedDict") == 0)
        which = G_ORDERED_DICT;
    else if (strcmp(module, "torch._utils") == 0 && strcmp(name, "_rebuild_tensor_v2") == 0)
        which = G_REBUILD_TENSOR;
    else if (strcmp(module, "torch._utils") == 0 && strcmp(name, "_rebuild_parameter") == 0)
        which = G_REBUILD_PARAMETER;
    else if (strcmp(module, "torch") == 0)
        for (int i = 0; i < N_STORAGE_TYPES && which < 0; i++)
            if (strcmp(name, storage_types[i].name) == 0) which = G_STORAGE, type = i;
    if (which < 0)
        return cnet_fail(u->err, CNET_EFORMAT,
                         "%s: refused: the pickle names the global '%s.%s', which does not "
                         "rebuild a tensor (cnet never runs code from a weights file; convert it "
                         "to safetensors with a trusted Python)",
                         u->path, module, name);
    int o = pk_new(u, PK_GLOBAL);
    if (o < 0) return o;
    u->objs[o].i = which;
    u->objs[o].type = type;
    return pk_push(u, o);
}

/* Pops the values above the last MARK into a new tuple/list (or onto an
 * existing list/dict with into >= 0), and drops the mark. */
static int pk_collect(pk *u, pk_kind kind, int into) {
    if (!u->n_marks) return pk_fail(u, CNET_EFORMAT, "no MARK to collect to");
    int base = u->marks[--u->n_marks];
    int o = into;
    if (o < 0 && (o = pk_new(u, kind)) < 0) return o;
    pk_obj *c = &u->objs[o];
    if (c->kind == PK_DICT && (u->sp - base) % 2)
        return pk_fail(u, CNET_EFORMAT, "SETITEMS/DICT with an odd number of values");
    for (int i = base; i < u->sp; i++) {
        int rc = pk_append(u, o, u->stack[i]);
        if (rc) return rc;
    }
    u->sp = base;
    return into >= 0 ? 0 : pk_push(u, o);
}

static int pk_tuple_n(pk *u, int n) {
    if (u->sp - pk_floor(u) < n) return pk_fail(u, CNET_EFORMAT, "stack underflow");
    int o = pk_new(u, PK_TUPLE);
    if (o < 0) return o;
    for (int i = u->sp - n; i < u->sp; i++) {
        int rc = pk_append(u, o, u->stack[i]);
        if (rc) return rc;
    }
    u->sp -= n;
    return pk_push(u, o);
}

static int pk_int_of(pk *u, int idx, int64_t *v, const char *what) {
    const pk_obj *o = &u->objs[idx];
    if (o->kind != PK_INT && o->kind != PK_BOOL) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s is a %s, not an int", what, pk_kind_names[o->kind]);
        return pk_fail(u, CNET_EFORMAT, msg);
    }
    *v = o->i;
    return 0;
}

/* An int tuple (a size or a stride) of at most CNET_MAX_DIMS values. */
static int pk_dims(pk *u, int idx, int64_t *dims, int *ndim, const char *what) {
    const pk_obj *o = &u->objs[idx];
    char msg[128];
    if (o->kind != PK_TUPLE) {
        snprintf(msg, sizeof msg, "a tensor's %s is a %s, not a tuple", what,
                 pk_kind_names[o->kind]);
        return pk_fail(u, CNET_EFORMAT, msg);
    }
    if (o->n > CNET_MAX_DIMS) {
        snprintf(msg, sizeof msg, "a tensor of %d dims (cnet reads at most %d)", o->n,
                 CNET_MAX_DIMS);
        return pk_fail(u, CNET_EFORMAT, msg);
    }
    for (int d = 0; d < o->n; d++) {
        int rc = pk_int_of(u, o->items[d], &dims[d], what);
        if (rc) return rc;
        if (dims[d] < 0) return pk_fail(u, CNET_EFORMAT, "a negative size or stride");
    }
    *ndim = o->n;
    return 0;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
 * backward_hooks[, metadata]) -> a tensor object. */
static int pk_rebuild_tensor(pk *u, int args_idx) {
    int n_args = u->objs[args_idx].n;
    if (n_args < 4 || n_args > 7)
        return pk_fail(u, CNET_EFORMAT, "_rebuild_tensor_v2 with the wrong number of arguments");
    if (u->objs[u->objs[args_idx].items[0]].kind != PK_STORAGE)
        return pk_fail(u, CNET_EFORMAT, "_rebuild_tensor_v2 of something that is not a storage");
    int o = pk_new(u, PK_TENSOR); /* may move u->objs: pointers are taken after it */
    if (o < 0) return o;
    pk_obj *t = &u->objs[o];
    const pk_obj *args = &u->objs[args_idx];
    t->storage = args->items[0];
    int nstride = 0, rc;
    if ((rc = pk_int_of(u, args->items[1], &t->offset, "a storage offset")) ||
        (rc = pk_dims(u, args->items[2], t->shape, &t->ndim, "size")) ||
        (rc = pk_dims(u, args->items[3], t->stride, &nstride, "stride")))
        return rc;
    if (t->offset < 0) return pk_fail(u, CNET_EFORMAT, "a negative storage offset");
    if (nstride != t->ndim)
        return pk_fail(u, CNET_EFORMAT, "a tensor's size and stride differ in length");
    return pk_push(u, o);
}

/* REDUCE and NEWOBJ: callable(*args) for the allowed callables. */
static int pk_reduce(pk *u) {
    int args = 0, fn = 0, rc;
    if ((rc = pk_pop(u, &args)) || (rc = pk_pop(u, &fn))) return rc;
    const pk_obj *a = &u->objs[args], *g = &u->objs[fn];
    if (a->kind != PK_TUPLE)
        return pk_fail(u, CNET_EFORMAT, "REDUCE with arguments that are not a tuple");
    if (g->kind != PK_GLOBAL)
        return pk_fail(u, CNET_EFORMAT, "REDUCE of something that is not a global");
    switch ((pk_global)g->i) {
    case G_ORDERED_DICT:
        if (a->n != 0) return pk_fail(u, CNET_EFORMAT, "OrderedDict called with arguments");
        return pk_push(u, pk_new(u, PK_DICT));
    case G_REBUILD_TENSOR:
        return pk_rebuild_tensor(u, args);
    case G_REBUILD_PARAMETER: /* (data, requires_grad, backward_hooks): the data */
        if (a->n < 1 || u->objs[a->items[0]].kind != PK_TENSOR)
            return pk_fail(u, CNET_EFORMAT, "_rebuild_parameter of something that is not a tensor");
        return pk_push(u, a->items[0]);
    case G_STORAGE:
        break;
    }
    return pk_fail(u, CNET_EFORMAT, "a storage class called directly");
}

/* BINPERSID: ('storage', torch.<Type>Storage, key, location, numel). */
static int pk_persistent(pk *u) {
    int pid = 0, rc;
    if ((rc = pk_pop(u, &pid))) return rc;
    const pk_obj *t = &u->objs[pid];
    if (t->kind != PK_TUPLE || t->n != 5 || u->objs[t->items[0]].kind != PK_STR ||
        strcmp(u->objs[t->items[0]].s, "storage") != 0)
        return pk_fail(u, CNET_EFORMAT,
                       "a persistent id that is not ('storage', type, key, location, numel)");
    const pk_obj *type = &u->objs[t->items[1]], *key = &u->objs[t->items[2]];
    if (type->kind != PK_GLOBAL || type->i != G_STORAGE)
        return pk_fail(u, CNET_EFORMAT, "a persistent id whose type is not a torch storage class");
    if (key->kind != PK_STR || key->len == 0 || strchr(key->s, '/'))
        return pk_fail(u, CNET_EFORMAT, "a storage key that is not a plain name");
    int64_t numel = 0;
    if ((rc = pk_int_of(u, t->items[4], &numel, "a storage's numel"))) return rc;
    if (numel < 0) return pk_fail(u, CNET_EFORMAT, "a negative storage numel");
    int type_index = type->type, key_index = t->items[2];
    int o = pk_new(u, PK_STORAGE); /* may move u->objs: t, type and key are stale after it */
    if (o < 0) return o;
    pk_obj *s = &u->objs[o];
    s->type = type_index;
    s->i = numel;
    s->storage = key_index;
    return pk_push(u, o);
}

static int pk_memo_put(pk *u, uint64_t at) {
    if (at >= TORCH_PICKLE_MAX_MEMO) return pk_fail(u, CNET_ELIMIT, "a memo index over the limit");
    if (u->sp <= pk_floor(u)) return pk_fail(u, CNET_EFORMAT, "PUT on an empty stack");
    if (at >= u->cap_memo) {
        size_t cap = u->cap_memo ? u->cap_memo : 256;
        while (cap <= at) cap *= 2;
        int *m = realloc(u->memo, cap * sizeof *m);
        if (!m) return pk_fail(u, CNET_ENOMEM, "out of memory");
        memset(m + u->cap_memo, 0, (cap - u->cap_memo) * sizeof *m);
        u->memo = m;
        u->cap_memo = cap;
    }
    if (!u->memo[at]) u->n_memo++;
    u->memo[at] = u->stack[u->sp - 1] + 1;
    return 0;
}

static int pk_memo_get(pk *u, uint64_t at) {
    if (at >= u->cap_memo || !u->memo[at])
        return pk_fail(u, CNET_EFORMAT, "GET of an unset memo index");
    return pk_push(u, u->memo[at] - 1);
}

/* SETITEM(S) / APPEND(S) target: the value under the collected ones. */
static int pk_container(pk *u, int below, pk_kind want, int *idx) {
    int at = u->sp - 1 - below;
    if (at < pk_floor(u)) return pk_fail(u, CNET_EFORMAT, "stack underflow");
    *idx = u->stack[at];
    if (u->objs[*idx].kind != want) {
        char msg[96];
        snprintf(msg, sizeof msg, "adding items to a %s (expected a %s)",
                 pk_kind_names[u->objs[*idx].kind], pk_kind_names[want]);
        return pk_fail(u, CNET_EFORMAT, msg);
    }
    return 0;
}

/* One opcode; sets *done at STOP. */
static int pk_step(pk *u, int *done) {
    const unsigned char *b = NULL;
    uint64_t n = 0;
    int rc, x = 0, y = 0, c = 0;
    if ((rc = pk_take(u, 1, &b))) return rc;
    unsigned char op = *b;
    switch (op) {
    case 0x80: /* PROTO */
        if ((rc = pk_uint(u, 1, &n))) return rc;
        return n >= 2 && n <= 5 ? 0 : pk_fail(u, CNET_EFORMAT, "pickle protocol outside 2..5");
    case 0x95: /* FRAME */
        return pk_uint(u, 8, &n);
    case '.': /* STOP */
        *done = 1;
        return 0;
    case '(': /* MARK */
        if (u->n_marks == TORCH_PICKLE_MAX_MARKS)
            return pk_fail(u, CNET_ELIMIT, "too many nested MARKs");
        u->marks[u->n_marks++] = u->sp;
        return 0;
    case '}': /* EMPTY_DICT */
        return pk_push(u, pk_new(u, PK_DICT));
    case ']': /* EMPTY_LIST */
        return pk_push(u, pk_new(u, PK_LIST));
    case ')': /* EMPTY_TUPLE */
        return pk_push(u, pk_new(u, PK_TUPLE));
    case 't': /* TUPLE */
        return pk_collect(u, PK_TUPLE, -1);
    case 'l': /* LIST */
        return pk_collect(u, PK_LIST, -1);
    case 'd': /* DICT */
        return pk_collect(u, PK_DICT, -1);
    case 0x85: /* TUPLE1 */
    case 0x86: /* TUPLE2 */
    case 0x87: /* TUPLE3 */
        return pk_tuple_n(u, op - 0x84);
    case 's': /* SETITEM */
        if ((rc = pk_container(u, 2, PK_DICT, &c))) return rc;
        if (u->sp - 2 < pk_floor(u)) return pk_fail(u, CNET_EFORMAT, "stack underflow");
        if ((rc = pk_pop(u, &y)) || (rc = pk_pop(u, &x)) || (rc = pk_append(u, c, x))) return rc;
        return pk_append(u, c, y);
    case 'u': /* SETITEMS */
    case 'e': /* APPENDS */
        if (!u->n_marks || u->marks[u->n_marks - 1] < 1)
            return pk_fail(u, CNET_EFORMAT, "SETITEMS/APPENDS without a MARK above a container");
        c = u->stack[u->marks[u->n_marks - 1] - 1];
        if (u->objs[c].kind != (op == 'u' ? PK_DICT : PK_LIST))
            return pk_fail(u, CNET_EFORMAT, "SETITEMS/APPENDS on the wrong kind of object");
        return pk_collect(u, PK_NONE, c);
    case 'a': /* APPEND */
        if ((rc = pk_container(u, 1, PK_LIST, &c))) return rc;
        if ((rc = pk_pop(u, &x))) return rc;
        return pk_append(u, c, x);
    case 'N': /* NONE */
        return pk_push(u, pk_new(u, PK_NONE));
    case 0x88: /* NEWTRUE */
    case 0x89: /* NEWFALSE */
        if ((x = pk_new(u, PK_BOOL)) < 0) return x;
        u->objs[x].i = op == 0x88;
        return pk_push(u, x);
    case 'J': /* BININT */
    case 'K': /* BININT1 */
    case 'M': /* BININT2 */
        if ((rc = pk_uint(u, op == 'J' ? 4 : op == 'K' ? 1 : 2, &n))) return rc;
        if ((x = pk_new(u, PK_INT)) < 0) return x;
        u->objs[x].i = op == 'J' ? (int64_t)(int32_t)(uint32_t)n : (int64_t)n;
        return pk_push(u, x);
    case 0x8a: /* LONG1: little-endian two's complement of n bytes */
        if ((rc = pk_uint(u, 1, &n))) return rc;
        if (n > 8) return pk_fail(u, CNET_EFORMAT, "an integer wider than 64 bits");
        if ((rc = pk_take(u, (size_t)n, &b))) return rc;
        if ((x = pk_new(u, PK_INT)) < 0) return x;
        {
            uint64_t v = 0;
            for (int i = (int)n - 1; i >= 0; i--) v = v << 8 | b[i];
            if (n > 0 && n < 8 && (b[n - 1] & 0x80)) v |= ~(uint64_t)0 << (8 * n);
            u->objs[x].i = (int64_t)v;
        }
        return pk_push(u, x);
    case 'G': /* BINFLOAT: big-endian double */
        if ((rc = pk_take(u, 8, &b))) return rc;
        if ((x = pk_new(u, PK_FLOAT)) < 0) return x;
        {
            uint64_t v = 0;
            for (int i = 0; i < 8; i++) v = v << 8 | b[i];
            memcpy(&u->objs[x].f, &v, sizeof v);
        }
        return pk_push(u, x);
    case 'X': /* BINUNICODE */
    case 'B': /* BINBYTES */
    case 'T': /* BINSTRING */
        if ((rc = pk_uint(u, 4, &n))) return rc;
        return pk_string(u, n);
    case 0x8c: /* SHORT_BINUNICODE */
    case 'C':  /* SHORT_BINBYTES */
    case 'U':  /* SHORT_BINSTRING */
        if ((rc = pk_uint(u, 1, &n))) return rc;
        return pk_string(u, n);
    case 0x8d: /* BINUNICODE8 */
    case 0x8e: /* BINBYTES8 */
        if ((rc = pk_uint(u, 8, &n))) return rc;
        return pk_string(u, n);
    case 'c': { /* GLOBAL */
        char module[256], name[256];
        if ((rc = pk_line(u, module, sizeof module)) || (rc = pk_line(u, name, sizeof name)))
            return rc;
        return pk_global_push(u, module, name);
    }
    case 0x93: /* STACK_GLOBAL */
        if ((rc = pk_pop(u, &y)) || (rc = pk_pop(u, &x))) return rc;
        if (u->objs[x].kind != PK_STR || u->objs[y].kind != PK_STR)
            return pk_fail(u, CNET_EFORMAT, "STACK_GLOBAL of values that are not strings");
        return pk_global_push(u, u->objs[x].s, u->objs[y].s);
    case 'R':  /* REDUCE */
    case 0x81: /* NEWOBJ */
        return pk_reduce(u);
    case 'b': /* BUILD: only the empty states torch's own objects carry */
        if ((rc = pk_pop(u, &y))) return rc;
        if (u->objs[y].kind == PK_NONE || (u->objs[y].kind == PK_DICT && u->objs[y].n == 0))
            return 0;
        return pk_fail(u, CNET_EFORMAT, "BUILD with a non-empty state (an object with attributes)");
    case 'Q': /* BINPERSID */
        return pk_persistent(u);
    case 'q': /* BINPUT */
    case 'r': /* LONG_BINPUT */
        if ((rc = pk_uint(u, op == 'q' ? 1 : 4, &n))) return rc;
        return pk_memo_put(u, n);
    case 0x94: /* MEMOIZE */
        return pk_memo_put(u, u->n_memo);
    case 'h': /* BINGET */
    case 'j': /* LONG_BINGET */
        if ((rc = pk_uint(u, op == 'h' ? 1 : 4, &n))) return rc;
        return pk_memo_get(u, n);
    case '0': /* POP */
        return pk_pop(u, &x);
    case '1': /* POP_MARK */
        if (!u->n_marks) return pk_fail(u, CNET_EFORMAT, "POP_MARK without a MARK");
        u->sp = u->marks[--u->n_marks];
        return 0;
    case '2': /* DUP */
        if (u->sp <= pk_floor(u)) return pk_fail(u, CNET_EFORMAT, "DUP on an empty stack");
        return pk_push(u, u->stack[u->sp - 1]);
    default: {
        char msg[96];
        snprintf(msg, sizeof msg, "opcode 0x%02x is not one a tensor file needs (refused)", op);
        return pk_fail(u, CNET_EFORMAT, msg);
    }
    }
}

/* Runs the pickle to STOP; *top is the object it returns. */
static int pk_run(pk *u, int *top) {
    int done = 0, rc = 0;
    while (!done && rc == 0) rc = pk_step(u, &done);
    if (rc) return rc;
    if (u->sp != 1 || u->n_marks)
        return pk_fail(u, CNET_EFORMAT, "STOP with other than one value on the stack");
    *top = u->stack[0];
    return 0;
}

int torch_pickle_sniff(const void *buf, size_t len) {
    const unsigned char *b = buf;
    return zip_is_zip(buf, len) || (len >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5);
}

/* The value under string key in dict d, or -1. */
static int pk_dict_get(const pk *u, int d, const char *key) {
    const pk_obj *o = &u->objs[d];
    for (int i = 0; i + 1 < o->n; i += 2) {
        const pk_obj *k = &u->objs[o->items[i]];
        if (k->kind == PK_STR && strcmp(k->s, key) == 0) return o->items[i + 1];
    }
    return -1;
}

/* Where one tensor's bytes are: a view into the archive, or a strided
 * gather into the heap. */
typedef struct pk_place {
    const unsigned char *base; /* the storage's first byte */
    int copy;                  /* 1: gather into the heap */
    size_t heap_at;
} pk_place;

/* Checks the tensor against its storage record and says where it lies. */
static int pk_place_tensor(const char *path, const zip_archive *z, const char *prefix, const pk *u,
                           const pk_obj *t, const char *name, pk_place *pl, cnet_error *err) {
    const pk_obj *s = &u->objs[t->storage];
    const pk_storage_type *type = &storage_types[s->type];
    char entry[ZIP_MAX_NAME];
    if (snprintf(entry, sizeof entry, "%s/data/%s", prefix, u->objs[s->storage].s) >=
        (int)sizeof entry)
        return cnet_fail(err, CNET_EFORMAT, "%s: tensor '%s': storage key too long", path, name);
    const zip_entry *e = zip_find(z, entry);
    if (!e)
        return cnet_fail(err, CNET_EFORMAT, "%s: tensor '%s': storage record '%s' is missing", path,
                         name, entry);
    if ((uint64_t)s->i > e->size / type->elsize || e->size != (uint64_t)s->i * type->elsize)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: tensor '%s': storage '%s' holds %llu bytes, not %lld %s elements",
                         path, name, entry, (unsigned long long)e->size, (long long)s->i,
                         type->name);
    int rc = zip_entry_data(z, e, &pl->base, err);
    if (rc) return rc;
    if (t->offset > s->i)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: tensor '%s' starts at element %lld of a storage of %lld elements",
                         path, name, (long long)t->offset, (long long)s->i);
    /* the furthest element the view reaches, and whether it is row-major */
    uint64_t last = (uint64_t)t->offset, expect = 1;
    int empty = 0, contiguous = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] == 0) empty = 1;
        /* a state dict never repeats elements; a view that does (stride 0,
         * overlapping strides) could ask for far more memory than the file */
        if (t->shape[d] > 1 && t->stride[d] == 0)
            return cnet_fail(err, CNET_EFORMAT, "%s: tensor '%s' repeats elements (stride 0)", path,
                             name);
        if (t->shape[d] > 1 && (uint64_t)t->stride[d] != expect) contiguous = 0;
        if (t->shape[d] > 0 && (uint64_t)t->stride[d] > (UINT64_MAX / 4) / (uint64_t)t->shape[d])
            return cnet_fail(err, CNET_EFORMAT, "%s: tensor '%s': stride overflows", path, name);
        last += (uint64_t)(t->shape[d] > 0 ? t->shape[d] - 1 : 0) * (uint64_t)t->stride[d];
        if ((uint64_t)t->shape[d] > (UINT64_MAX / 4) / expect)
            return cnet_fail(err, CNET_EFORMAT, "%s: tensor '%s': size overflows", path, name);
        expect *= (uint64_t)t->shape[d];
    }
    if (!empty && last >= (uint64_t)s->i)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: tensor '%s' reaches element %llu of a storage of %lld elements", path,
                         name, (unsigned long long)last, (long long)s->i);
    if (expect > (uint64_t)s->i)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: tensor '%s' has %llu elements, more than its storage's %lld "
                         "(overlapping strides)",
                         path, name, (unsigned long long)expect, (long long)s->i);
    pl->copy = !contiguous;
    return 0;
}

/* Copies a strided view into dst in row-major order (at most 4 dims). */
static void pk_gather(unsigned char *dst, const unsigned char *src, const pk_obj *t,
                      size_t elsize) {
    int64_t shape[4] = {1, 1, 1, 1}, stride[4] = {0, 0, 0, 0};
    for (int d = 0; d < t->ndim; d++) {
        shape[4 - t->ndim + d] = t->shape[d];
        stride[4 - t->ndim + d] = t->stride[d];
    }
    src += (size_t)t->offset * elsize;
    for (int64_t a = 0; a < shape[0]; a++)
        for (int64_t b = 0; b < shape[1]; b++)
            for (int64_t c = 0; c < shape[2]; c++)
                for (int64_t d = 0; d < shape[3]; d++) {
                    int64_t at = a * stride[0] + b * stride[1] + c * stride[2] + d * stride[3];
                    memcpy(dst, src + (size_t)at * elsize, elsize);
                    dst += elsize;
                }
}

static int by_name_cmp(const void *a, const void *b, void *file) {
    const st_file *f = file;
    return strcmp(f->entries[*(const int *)a].name, f->entries[*(const int *)b].name);
}

/* The tensors of dict d into f's entries. */
static int pk_to_entries(st_file *f, const zip_archive *z, const char *prefix, const pk *u, int d,
                         cnet_error *err) {
    const pk_obj *dict = &u->objs[d];
    int cap = dict->n / 2;
    if (!(f->entries = calloc((size_t)cap + 1, sizeof *f->entries)) ||
        !(f->by_name = calloc((size_t)cap + 1, sizeof *f->by_name)))
        return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", f->path);
    pk_place *places = calloc((size_t)cap + 1, sizeof *places);
    if (!places) return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", f->path);
    const pk_obj **tensors = calloc((size_t)cap + 1, sizeof *tensors);
    int rc = tensors ? 0 : cnet_fail(err, CNET_ENOMEM, "%s: out of memory", f->path);
    size_t heap_bytes = 0;
    for (int i = 0; i + 1 < dict->n && rc == 0; i += 2) {
        const pk_obj *k = &u->objs[dict->items[i]], *v = &u->objs[dict->items[i + 1]];
        if (v->kind != PK_TENSOR) continue;
        if (k->kind != PK_STR || k->len == 0 || strlen(k->s) != k->len) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: a tensor under a key that is not a name",
                           f->path);
            break;
        }
        const pk_storage_type *type = &storage_types[u->objs[v->storage].type];
        if (type->dtype < 0) continue; /* no cnet dtype: left out (torch_pickle.h) */
        pk_place *pl = &places[f->n];
        if ((rc = pk_place_tensor(f->path, z, prefix, u, v, k->s, pl, err))) break;
        st_entry *e = &f->entries[f->n];
        e->view.dtype = (cnet_dtype)type->dtype;
        e->view.ndim = v->ndim;
        e->view.device = -1;
        size_t numel = 1;
        for (int dd = 0; dd < v->ndim; dd++) {
            e->view.shape[dd] = v->shape[dd];
            numel *= (size_t)v->shape[dd];
        }
        e->nbytes = numel * type->elsize;
        if (pl->copy) {
            pl->heap_at = heap_bytes;
            heap_bytes += e->nbytes;
            /* every storage is in the file once; copies past its size can
             * only be many views of one storage (torch_pickle.h) */
            if (heap_bytes > f->map_size) {
                rc = cnet_fail(err, CNET_ELIMIT,
                               "%s: tensor '%s': copies of strided tensors take more than the "
                               "file's %zu bytes (many views of one storage)",
                               f->path, k->s, f->map_size);
                break;
            }
        } else {
            e->view.data = (void *)(pl->base + (size_t)v->offset * type->elsize);
        }
        if (!(e->name = strdup(k->s))) {
            rc = cnet_fail(err, CNET_ENOMEM, "%s: out of memory", f->path);
            break;
        }
        tensors[f->n] = v;
        f->by_name[f->n] = f->n;
        f->n++;
    }
    if (rc == 0 && heap_bytes && !(f->heap = malloc(heap_bytes)))
        rc = cnet_fail(err, CNET_ENOMEM, "%s: out of memory copying %zu bytes of strided tensors",
                       f->path, heap_bytes);
    for (int i = 0; i < f->n && rc == 0; i++) {
        if (!places[i].copy) continue;
        unsigned char *dst = (unsigned char *)f->heap + places[i].heap_at;
        pk_gather(dst, places[i].base, tensors[i], cnet_dtype_size(f->entries[i].view.dtype));
        f->entries[i].view.data = dst;
    }
    free(places);
    free(tensors);
    if (rc) return rc;
    qsort_r(f->by_name, (size_t)f->n, sizeof *f->by_name, by_name_cmp, f);
    for (int i = 1; i < f->n; i++)
        if (strcmp(f->entries[f->by_name[i]].name, f->entries[f->by_name[i - 1]].name) == 0)
            return cnet_fail(err, CNET_EFORMAT, "%s: tensor '%s' appears twice", f->path,
                             f->entries[f->by_name[i]].name);
    return 0;
}

/* The archive's folder: the X of the X/data.pkl record. */
static int pk_find_pickle(const zip_archive *z, char *prefix, size_t cap, const zip_entry **pkl,
                          cnet_error *err) {
    for (int i = 0; i < z->n; i++) {
        const char *name = z->entries[i].name, *slash = strchr(name, '/');
        if (!slash || slash == name || strcmp(slash, "/data.pkl") != 0) continue;
        if ((size_t)(slash - name) >= cap) break;
        memcpy(prefix, name, (size_t)(slash - name));
        prefix[slash - name] = 0;
        *pkl = &z->entries[i];
        return 0;
    }
    return cnet_fail(err, CNET_EFORMAT,
                     "%s: a zip archive without an <archive>/data.pkl record: not a file "
                     "torch.save wrote",
                     z->path);
}

static int pk_read_archive(st_file *f, cnet_error *err) {
    zip_archive z;
    int rc = zip_open(&z, f->path, f->map, f->map_size, err);
    if (rc) return rc;
    char prefix[ZIP_MAX_NAME], name[ZIP_MAX_NAME + 16];
    const zip_entry *pkl = NULL, *order;
    const unsigned char *bytes;
    pk u = {.path = f->path, .err = err};
    if ((rc = pk_find_pickle(&z, prefix, sizeof prefix, &pkl, err))) goto done;
    snprintf(name, sizeof name, "%s/byteorder", prefix);
    if ((order = zip_find(&z, name))) {
        if ((rc = zip_entry_data(&z, order, &bytes, err))) goto done;
        if (order->size != 6 || memcmp(bytes, "little", 6) != 0) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: %s is not \"little\" (big-endian tensors)",
                           f->path, name);
            goto done;
        }
    }
    if (pkl->size > TORCH_PICKLE_MAX_PICKLE) {
        rc = cnet_fail(err, CNET_ELIMIT, "%s: data.pkl is %llu bytes (limit %u)", f->path,
                       (unsigned long long)pkl->size, TORCH_PICKLE_MAX_PICKLE);
        goto done;
    }
    if ((rc = zip_entry_data(&z, pkl, &u.p, err))) goto done;
    u.len = (size_t)pkl->size;
    int top = 0;
    if ((rc = pk_run(&u, &top))) goto done;
    if (u.objs[top].kind == PK_DICT) {
        int sd = pk_dict_get(&u, top, "state_dict");
        if (sd >= 0 && u.objs[sd].kind == PK_DICT) top = sd;
    }
    if (u.objs[top].kind != PK_DICT) {
        rc = cnet_fail(err, CNET_EFORMAT, "%s: the pickle holds a %s, not a dict of tensors",
                       f->path, pk_kind_names[u.objs[top].kind]);
        goto done;
    }
    rc = pk_to_entries(f, &z, prefix, &u, top, err);
done:
    pk_free(&u);
    zip_close(&z);
    return rc;
}

int torch_pickle_open(st_file *f, const char *path, cnet_error *err) {
    memset(f, 0, sizeof *f);
    if (!(f->path = strdup(path))) return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
    struct stat st;
    if (fd < 0) {
        rc = cnet_fail(err, CNET_EIO, "%s: cannot open: %s", path, strerror(errno));
    } else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        rc = cnet_fail(err, CNET_EIO, "%s: not a non-empty regular file", path);
    } else {
        void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED)
            rc = cnet_fail(err, CNET_EIO, "%s: cannot map: %s", path, strerror(errno));
        else
            f->map = map, f->map_size = (size_t)st.st_size;
    }
    if (fd >= 0) close(fd);
    if (rc == 0 && !zip_is_zip(f->map, f->map_size))
        rc = torch_pickle_sniff(f->map, f->map_size)
                 ? cnet_fail(err, CNET_EFORMAT,
                             "%s: PyTorch's legacy (pre-1.6, non-zip) format is not read: "
                             "re-save it with torch.save in PyTorch >= 1.6, or as safetensors",
                             path)
                 : cnet_fail(err, CNET_EFORMAT, "%s: not a file torch.save wrote (no zip header)",
                             path);
    if (rc == 0) rc = pk_read_archive(f, err);
    if (rc) st_close(f);
    return rc;
}
