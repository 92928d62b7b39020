# meter — PGXS build. The version lives in meter.control only.
PG_CONFIG ?= pg_config

EXTENSION  = meter
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" meter.control)
MODULE_big = meter
OBJS       = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# The install script is assembled from sql/install/NN_concept.sql, one file per
# concept, in name order. A released script is frozen by committing it as is.
INSTALL_PARTS = $(sort $(wildcard sql/install/*.sql))
DATA_built    = sql/meter--$(EXTVERSION).sql

# pg_regress: every sql/*.sql but the install scripts (expected/ holds outputs).
REGRESS      = $(sort $(filter-out meter--%,$(basename $(notdir $(wildcard sql/*.sql)))))
REGRESS_OPTS = --load-extension=meter

EXTRA_CLEAN = results regression.diffs regression.out

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Always reassembled (it is cheap): renamed or removed parts must not leave it stale.
sql/meter--$(EXTVERSION).sql: $(INSTALL_PARTS) meter.control FORCE
	cat $(INSTALL_PARTS) > $@

.PHONY: FORCE
FORCE:

.PHONY: test demo bench valgrind ubsan
test:
	scripts/test.sh
# The whole suite with the server under valgrind (non-empty valgrind logs fail).
valgrind:
	METER_VALGRIND=1 scripts/test.sh
# The whole suite with the extension built with UndefinedBehaviorSanitizer (any
# "runtime error" in the server log fails); objects are rebuilt before and after.
ubsan:
	$(MAKE) -s clean
	EXTRA_CFLAGS="-fsanitize=undefined -fno-sanitize-recover=all" scripts/test.sh; \
		rc=$$?; $(MAKE) -s clean; exit $$rc
demo:
	scripts/demo.sh
bench:
	scripts/bench.sh
