#!/bin/sh
# The model-free annotators (engine/annotators/) against the pure-Python
# reference written from the sd-webui-controlnet extension's source and
# OpenCV's code (tests/tools/annotators_ref.py), pixel for pixel, and against
# OpenCV's own output recorded through the extension's calls
# (tests/tools/annotators_cv2.json), through build/tests/tool_annotate. Run
# from the repository root (tests/run.sh does).
BUILD=${BUILD:-build}
if [ ! -x "$BUILD/tests/tool_annotate" ]; then
    echo "annotators_test: 0 passed, 1 failed ($BUILD/tests/tool_annotate is not built)"
    exit 1
fi
exec python3 tests/tools/annotators_ref.py "$BUILD/tests/tool_annotate"
