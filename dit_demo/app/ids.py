"""Every element id of the page, in one place. Each is prefixed by the part it belongs to: gen- (the
Generate tab), cmp- (Compare), r- (Reproduce), q- (Quality), model- (the model box), page- (the
page itself).
They are the page's stable names: the tests, page.js, the CSS and the screenshots use them."""

from __future__ import annotations

# Generate
GEN_CFG = "gen-cfg"
GEN_CLASSES = "gen-classes"
GEN_CLASS_NOTE = "gen-class-note"
GEN_IMAGES = "gen-images"
GEN_OPTIONS = "gen-options"
GEN_PRESET = "gen-preset"
GEN_PREVIEW = "gen-preview"
GEN_REUSE = "gen-reuse"
GEN_RUN = "gen-run"
GEN_SAMPLER = "gen-sampler"
GEN_SEED = "gen-seed"
GEN_SEND = "gen-send"
GEN_STATUS = "gen-status"
GEN_STEPS = "gen-steps"
GEN_STEPS_NOTE = "gen-steps-note"
GEN_STOP = "gen-stop"

# Compare
CMP_AXIS = "cmp-axis"
CMP_CFG = "cmp-cfg"
CMP_CLASS = "cmp-class"
CMP_CLASS_NOTE = "cmp-class-note"
CMP_DISTANCE_PLOT = "cmp-distance-plot"
CMP_GRID = "cmp-grid"
CMP_GRID_DARK = "cmp-grid-dark"
CMP_MODELS = "cmp-models"
CMP_PRESETS = "cmp-presets"
CMP_PREVIEW = "cmp-preview"
CMP_QUALITY = "cmp-quality"
CMP_QUALITY_CELL = "cmp-quality-cell"
CMP_QUALITY_OPEN = "cmp-quality-open"
CMP_RUN = "cmp-run"
CMP_SAMPLERS = "cmp-samplers"
CMP_SEED = "cmp-seed"
CMP_SEEDS = "cmp-seeds"
CMP_SIGMA_PLOT = "cmp-sigma-plot"
CMP_STATUS = "cmp-status"
CMP_STEPS = "cmp-steps"
CMP_STOP = "cmp-stop"
CMP_TABLE = "cmp-table"
CMP_VARIANTS = "cmp-variants"
CMP_VIEW = "cmp-view"
CMP_ZIP = "cmp-zip"

# Reproduce
R_FILE = "r-file"
R_IMAGE = "r-image"
R_PARAMS = "r-params"
R_RUN = "r-run"
R_TEXT = "r-text"

# the model box
MODEL_LOAD = "model-load"
MODEL_NAME = "model-name"

# the page itself
PAGE_DARK = "page-dark"

# Quality
Q_ACCURACY = "q-accuracy"
Q_BEST = "q-best"
Q_BUDGET = "q-budget"
Q_CELL = "q-cell"
Q_COST = "q-cost"
Q_CSV = "q-csv"
Q_CURVE = "q-curve"
Q_DETAILS = "q-details"
Q_METRIC = "q-metric"
Q_PARETO = "q-pareto"
Q_SOURCE = "q-source"
Q_STRIP = "q-strip"
Q_TABLE = "q-table"
Q_UPLOAD = "q-upload"
