# vireo: the two commands for a fresh Debian 12 machine (as root):
#   make demo   install dependencies, build, build the default guest image,
#               start vireod, create and boot a VM, show how to reach it
#   make check  install dependencies, build, run every test
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
STATE_DIR  ?= /var/lib/vireo
RUN_DIR    ?= /run/vireo
# The guest image the tests boot (built once, reused).
TEST_IMAGE ?= $(CURDIR)/$(BUILD)/guest/default
# The installer ISO of the ISO-install test (built once, reused).
TEST_ISO_DIR ?= $(CURDIR)/$(BUILD)/guest/installer
# The Debian guest image of tests/e2e/test_debian_guest.py (built once, reused).
DEBIAN_IMAGE ?= $(CURDIR)/$(BUILD)/guest/debian

.PHONY: all deps web build build-asan build-tsan build-fuzz image debian-image debian-image-bg demo check check-debian unit e2e clean

all: build

deps:
	@bash scripts/install-deps.sh

# The web UI (web/dist, served by vireod at /ui/): npm ci, vite (docs/web.md).
web: deps
	@bash scripts/build-web.sh

# Only what is run from this build: vireod, its fence, the CLI and the two
# QEMU drivers' tools of test_driver_migration*.py (make check, make demo,
# make check-debian). The unit tests, benchmarks and simulators run from the
# ASan build, which compiles every file with -Werror; a plain
# `ninja -C build` still builds them all here (bench/ builds its own).
BUILD_TARGETS = src/daemon/vireod src/fence/vireo-fence cli/vireo \
                tests/unit/migrate-check tests/unit/mirror-check
build: deps web
	@test -f $(BUILD)/build.ninja || meson setup $(BUILD) --buildtype=debugoptimized
	@meson compile -C $(BUILD) $(BUILD_TARGETS)

# Unoptimized (-O0 -g): ASan and UBSan check every access as written, and
# it compiles in about 60 % of the CPU of -O2 (docs/benchmarks.md,
# "What make check's builds cost"); the plain build keeps -O2's warnings.
build-asan: deps
	@test -f $(ASAN_BUILD)/build.ninja || meson setup $(ASAN_BUILD) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
	@meson compile -C $(ASAN_BUILD)

# vireod alone under TSan: the system tests run it to catch unlocked reads.
# -O1 (TSan's documentation asks for -O1 or more for speed) with line tables
# only (-g1: its reports name files and lines): about half the compile CPU
# of -O2 -g (docs/benchmarks.md, "What make check's builds cost").
build-tsan: deps
	@test -f $(TSAN_BUILD)/build.ninja || meson setup $(TSAN_BUILD) -Db_sanitize=thread -Db_lundef=false -Doptimization=1 -Ddebug=false -Dc_args=-g1
	@meson compile -C $(TSAN_BUILD) src/daemon/vireod

# The libFuzzer targets (tests/fuzz), built with clang: only the parts of
# the core library they link (tests/fuzz/meson.build).
build-fuzz: deps
	@test -f $(FUZZ_BUILD)/build.ninja || CC=clang meson setup $(FUZZ_BUILD) -Dfuzzing=true -Db_lundef=false
	@meson compile -C $(FUZZ_BUILD)

image: deps
	@bash guest/build-image.sh $(TEST_IMAGE)
	@bash guest/build-installer-iso.sh $(TEST_ISO_DIR)

# The Debian guest (guest/build-debian-image.sh: debootstrap, ~10-20 min on
# 2 cores): nothing to do when its cache is current.
debian-image: deps
	@bash guest/build-debian-image.sh $(DEBIAN_IMAGE)

# The same in the background (log: DEBIAN_IMAGE.log), started before the
# compiles so it never adds to the critical path; the test waits for its
# lock. Only started when the image is missing or stale, and no build holds
# the lock (one a stopped make check left running: a second would truncate
# its log while it writes on).
debian-image-bg: deps
	@mkdir -p $(dir $(DEBIAN_IMAGE))
	@if grep -qs '"cloud_init":true' $(DEBIAN_IMAGE)/image.json && \
	    grep -qs "\"script\":\"$$(cat guest/build-debian-image.sh guest/build-image.sh | sha256sum | cut -d' ' -f1)\"" $(DEBIAN_IMAGE)/image.json; then \
	    :; \
	elif ! flock -n $(dir $(DEBIAN_IMAGE)).$(notdir $(DEBIAN_IMAGE)).lock true; then \
	    echo "the Debian guest image is being built already (log: $(DEBIAN_IMAGE).log)"; \
	else \
	    echo "building the Debian guest image in the background (log: $(DEBIAN_IMAGE).log)"; \
	    setsid bash guest/build-debian-image.sh $(DEBIAN_IMAGE) >$(DEBIAN_IMAGE).log 2>&1 </dev/null & \
	    sleep 1; \
	fi

demo: build
	@bash scripts/demo.sh $(BUILD) $(STATE_DIR) $(RUN_DIR)

# The builds and the guest images side by side (-j3): the image scripts use
# about one core, the compiles fill the other (about 30 s of 5 min saved).
# The Debian guest's test is `make check-debian`'s (below): inside `make
# check` (its image built in the background, the test a seventh run) it
# pushed a clean run to 25:28 on 2 cores, and to 25:36 made two boots on a
# cheaper image (2026-12-07; 21:35 without it).
check: deps
	@$(MAKE) --no-print-directory -j3 build build-asan build-tsan build-fuzz image
	@bash scripts/check.sh $(BUILD) $(ASAN_BUILD) $(TEST_IMAGE) $(TSAN_BUILD) $(FUZZ_BUILD)

# The Debian guest's system test (cloud-init, SSH, the agent, quiesced
# snapshot and backup, revert, new cloud-init settings, a reboot from inside,
# restore), its image built first when missing or stale (not in `make
# check`: time).
check-debian: build debian-image
	@VIREO_BUILD=$(CURDIR)/$(BUILD) VIREO_TEST_IMAGE=$(TEST_IMAGE) \
	    VIREO_TEST_DEBIAN_IMAGE=$(DEBIAN_IMAGE) \
	    /usr/bin/python3 -m pytest -v -p no:cacheprovider tests/e2e/test_debian_guest.py

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
