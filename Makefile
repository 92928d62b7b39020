# meter — PGXS build. The version lives in meter.control only.
PG_CONFIG ?= pg_config

EXTENSION  = meter
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" meter.control)
MODULE_big = meter
OBJS       = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# sql/ holds only install and upgrade scripts. A released version's install script is
# committed and never edited (sql/meter--0.1.0.sql); upgrades are sql/meter--A--B.sql.
# The current version's install script is assembled from sql/install/NN_concept.sql,
# one file per concept, in name order.
INSTALL_PARTS = $(sort $(wildcard sql/install/*.sql))
DATA_built    = sql/meter--$(EXTVERSION).sql
DATA          = $(filter-out $(DATA_built),$(wildcard sql/meter--*.sql))

# pg_regress: test/sql/*.sql → test/expected/*.out (pgvector's layout).
REGRESS      = $(sort $(basename $(notdir $(wildcard test/sql/*.sql))))
REGRESS_OPTS = --inputdir=test --load-extension=meter

EXTRA_CLEAN = results regression.diffs regression.out

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Rebuild an object when a header it includes changes (PGXS does not track headers).
override CPPFLAGS += -MMD -MP
-include $(OBJS:.o=.d)
EXTRA_CLEAN += $(OBJS:.o=.d)

# Always reassembled (it is cheap): renamed or removed parts must not leave it stale.
$(DATA_built): $(INSTALL_PARTS) meter.control FORCE
	cat $(INSTALL_PARTS) > $@

.PHONY: FORCE
FORCE:

.PHONY: test demo bench valgrind ubsan citus-check citus-bench
test:
	scripts/test.sh
# The Citus test (coordinator + 2 workers on loopback, test/citus/): not part of `make test`
# nor of CI's count. Where Citus is not installed it says so in one line and succeeds.
citus-check:
	test/citus/run.sh
# The same, then the informational benchmark: ingest and usage_by_customer on the 3-node
# cluster vs one server (CITUS_BENCH_N events, default 200,000).
citus-bench:
	CITUS_BENCH_N=$${CITUS_BENCH_N:-200000} test/citus/run.sh
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
