/* The canny preprocessor of the ControlNet examples:
 *   edges = cv2.Canny(np.array(image), low, high)   # apertureSize=3, L1
 *   control = np.stack([edges] * 3, axis=2)
 * as OpenCV's imgproc/src/canny.cpp defines it: no Gaussian blur; 3x3 Sobel
 * derivatives with replicated borders; on a colour image, per pixel the
 * channel with the largest |dx| + |dy| (the first on ties) gives dx, dy and
 * the magnitude; non-maximum suppression along the gradient direction
 * quantised with tan(22.5 deg) in 15-bit fixed point, with OpenCV's strict
 * and non-strict neighbour comparisons; magnitudes outside the image are 0;
 * thresholds floor(low) < m is a candidate, floor(high) < m is an edge,
 * candidates 8-connected to an edge become edges (hysteresis); low > high
 * are swapped. Output pixels are 0 or 255. Not a general edge detector: no
 * L2 gradient, no other aperture. */
#ifndef CNET_CANNY_H
#define CNET_CANNY_H

#include <stdint.h>

#include "engine/core/error.h"
#include "engine/image/image.h"

/* edges [height, width] (0 or 255) of src [height, width, channels],
 * channels 1..4. */
int canny_edges(uint8_t *edges, const uint8_t *src, int width, int height, int channels, double low,
                double high, cnet_error *err);

/* out (allocated here) = the edges of in, stacked to 3 channels. */
int canny_rgb8(image_rgb8 *out, const image_rgb8 *in, double low, double high, cnet_error *err);

#endif
