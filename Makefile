# netlab — build, run, test, lint, bench.
CARGO ?= cargo
# Debian packages the integration tests drive (real clients we did not write).
TEST_PACKAGES := netcat-openbsd socat tftp-hpa atftp curl iputils-ping iproute2 nftables procps util-linux

.PHONY: all build release run test lint fmt check-pure deps bench bench-quick clean

all: build

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release --workspace

## run: the server with its defaults (chat 7777/tcp, echo 7007/tcp+udp, tftp 6969/udp on 127.0.0.1)
run:
	$(CARGO) run --release -- serve

## test: unit tests, simulations and integration tests against the real binary on loopback
test: check-pure
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace --no-fail-fast

lint: check-pure
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## check-pure: protocol crates are sans-IO: no mio/socket2 in their dependency trees, no clock reads.
check-pure:
	@scripts/check-pure.sh

## deps: install the real clients the tests drive (Debian; needs root)
deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_PACKAGES) >/dev/null

bench:
	$(CARGO) build --release
	scripts/bench.sh full

bench-quick:
	$(CARGO) build --release
	scripts/bench.sh quick

clean:
	$(CARGO) clean
