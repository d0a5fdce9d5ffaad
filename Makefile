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

.PHONY: all deps build build-asan build-tsan build-fuzz image demo check unit e2e clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@test -f $(BUILD)/build.ninja || meson setup $(BUILD) --buildtype=debugoptimized
	@meson compile -C $(BUILD)

build-asan: deps
	@test -f $(ASAN_BUILD)/build.ninja || meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false
	@meson compile -C $(ASAN_BUILD)

# vireod alone under TSan: the system tests run it to catch unlocked reads.
build-tsan: deps
	@test -f $(TSAN_BUILD)/build.ninja || meson setup $(TSAN_BUILD) -Db_sanitize=thread -Db_lundef=false
	@meson compile -C $(TSAN_BUILD) src/daemon/vireod

# The libFuzzer targets (tests/fuzz), built with clang.
build-fuzz: deps
	@test -f $(FUZZ_BUILD)/build.ninja || CC=clang meson setup $(FUZZ_BUILD) -Dfuzzing=true -Db_lundef=false
	@meson compile -C $(FUZZ_BUILD)

image: deps
	@bash guest/build-image.sh $(TEST_IMAGE)
	@bash guest/build-installer-iso.sh $(TEST_ISO_DIR)

demo: build
	@bash scripts/demo.sh $(BUILD) $(STATE_DIR) $(RUN_DIR)

check: build build-asan build-tsan build-fuzz image
	@bash scripts/check.sh $(BUILD) $(ASAN_BUILD) $(TEST_IMAGE) $(TSAN_BUILD) $(FUZZ_BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
