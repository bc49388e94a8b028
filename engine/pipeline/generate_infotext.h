/* The A1111 "parameters" text of a generated image: what `cnet generate`
 * and the service write into each PNG's text chunk
 * (engine/pipeline/generate_infotext.c). */
#ifndef CNET_GENERATE_INFOTEXT_H
#define CNET_GENERATE_INFOTEXT_H

#include "engine/config/config.h"
#include "engine/core/error.h"
#include "engine/pipeline/generate.h"

/* The text of image `index` (of r->num_images), in the layout A1111's
 * parse_generation_parameters reads:
 *   <prompt>
 *   Negative prompt: <negative prompt>          (when there is one)
 *   Steps: 20, Sampler: UniPC, CFG scale: 7.5, Seed: 1, Size: 512x512,
 *   Model: sd15, ControlNet 0: "Module: canny, Model: ..., Weight: 1, ...",
 *   Version: cnet
 * sched is the scheduler config the run used. Returns a malloc'd string
 * (caller frees) or NULL with err set (err may be NULL). */
char *generate_infotext(const generate_request *r, const cnet_sched_config *sched, int width,
                        int height, int index, cnet_error *err);

#endif
