/* Arenas (engine/core/arena.h): bottom-up slices, mark/restore, and the top
 * slice that set_grads_to_none keeps across resets; the high-water mark
 * counts both ends. */
#include <stdint.h>

#include "engine/core/arena.h"
#include "tests/lib/harness.h"

static void test_bottom_and_top(void) {
    cnet_backend be;
    cnet_error err = {0};
    cnet_arena a;
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    CHECK(cnet_arena_init(&a, &be, 1000, "test arena", &err) == 0, "%s", err.msg);
    char *p = cnet_arena_alloc(&a, 100, &err);
    char *top = cnet_arena_alloc_top(&a, 200, &err);
    CHECK(p == a.base && top, "slices %p %p", (void *)p, (void *)top);
    CHECK((uintptr_t)top % CNET_ARENA_ALIGN == 0, "top slice not aligned");
    CHECK(top >= p + 100 && top + 200 <= a.base + a.capacity, "top slice outside the arena");
    CHECK(a.high_water == a.used + a.top && a.top >= 200, "high water %zu, used %zu, top %zu",
          a.high_water, a.used, a.top);
    /* Bottom-up slices stop below the top one. */
    const size_t room = (size_t)(top - a.base) - 128; /* the next slice starts at 128 */
    CHECK(cnet_arena_alloc(&a, room + 1, &err) == NULL && err.code == CNET_ENOMEM &&
              strstr(err.msg, "test arena"),
          "overlapping slice: %s", err.msg);
    CHECK(cnet_arena_alloc(&a, room, &err) != NULL, "a slice that just fits: %s", err.msg);
    /* reset keeps the top slice; a second top slice may not cross the used part. */
    cnet_arena_reset(&a);
    CHECK(a.top >= 200, "reset gave the top slice back");
    CHECK(cnet_arena_alloc(&a, 700, &err) != NULL, "%s", err.msg);
    CHECK(cnet_arena_alloc_top(&a, 200, &err) == NULL && err.code == CNET_ENOMEM,
          "a top slice over the used part");
    cnet_arena_release_top(&a);
    cnet_arena_reset(&a);
    CHECK(cnet_arena_alloc(&a, 1000, &err) != NULL, "the whole arena after release: %s", err.msg);
    CHECK(a.high_water == 1000, "high water %zu", a.high_water);
    cnet_arena_free(&a);
    cnet_backend_free(&be);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_bottom_and_top);
    return harness_done();
}
