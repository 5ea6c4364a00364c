# homerouter: `make test` installs what it needs on a fresh Debian machine
# (as root) and runs the unit and lab tests; `make lab` shows the router at
# work in network namespaces.

GO          ?= go
VERSION     := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Debian packages of the lab's real peers and clients; chromium is the
# browser that loads the status page (headless), with a font that has the
# page's ✔ and ✘.
LAB_DEBS := iproute2 dnsmasq-base isc-dhcp-server radvd ndisc6 udhcpc tcpdump \
	isc-dhcp-client dhcpcd-base bind9-dnsutils curl kea-admin \
	nftables iperf3 busybox dnsperf unbound iputils-ping prometheus \
	chromium fonts-dejavu-core tshark
# ... and of the boot image: unpacking Debian's kernel and making its
# modules.dep (kmod), the disk image's filesystems and bootloader, and QEMU
# with its iPXE ROMs for the image tests and make demo.
IMAGE_DEBS := kmod e2fsprogs dosfstools mtools syslinux syslinux-common fdisk \
	qemu-system-x86 ipxe-qemu

# The disk image make disk writes, and the directory it seeds /perm from.
DISK     ?= build/disk.img
PERM_DIR ?=

export CGO_ENABLED := 0

.PHONY: all homerouter deps test lint lab bench clean kernel image test-images update pxe disk demo oui

all: homerouter

homerouter:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o homerouter .

# deps installs the lab's Debian packages that are missing (needs root and
# apt-get) and downloads the Go modules. A policy-rc.d keeps apt from
# starting the daemons on the host: the lab starts its own, in namespaces.
deps:
	@missing=$$(for p in $(LAB_DEBS) $(IMAGE_DEBS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		policy=/usr/sbin/policy-rc.d; \
		if [ ! -e $$policy ]; then \
			trap 'rm -f $$policy' EXIT INT TERM; \
			printf '#!/bin/sh\nexit 101\n' > $$policy; chmod +x $$policy; \
		fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		if command -v systemctl >/dev/null 2>&1; then \
			systemctl disable --quiet unbound unbound-resolvconf dnsmasq isc-dhcp-server radvd prometheus 2>/dev/null || true; \
		fi; \
	fi
	$(GO) mod download

# test prints one line per test, so the log shows that the lab tests ran
# rather than skipped; on failure it prints everything the tests said.
test: deps image pxe test-images
	$(GO) vet ./...
	@mkdir -p build
	@echo "go test -v -count=1 -timeout 20m ./... (the benchmarks only in make bench; full log: build/test.log)"
	@$(GO) test -v -count=1 -timeout 20m -skip '^TestBench' ./... > build/test.log 2>&1; rc=$$?; \
	grep -E '^\s*--- (PASS|FAIL|SKIP)|^(ok|FAIL|PASS)\b|^panic:|initramfs size:|power-on to first LAN lease:' build/test.log; \
	if [ $$rc -ne 0 ]; then echo "--- full log:"; grep -v '^=== ' build/test.log; fi; \
	exit $$rc
	@# Again under the race detector: every package but the root one, whose
	@# lab tests ran above. TestWriteFileAtomicKilled is about SIGKILL, not
	@# data races, and ran above; under -race its child is too slow to be
	@# killed mid-write often enough to prove anything.
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 10m -skip '^TestWriteFileAtomicKilled$$' $$($(GO) list ./... | grep -v '^github.com/homerouter/homerouter$$')

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# kernel fetches Debian's kernel into build/kernel (once per version).
kernel: deps
	@sh initramfs/kernel.sh build

# image writes build/vmlinuz and $(INITRAMFS): the router as /init with
# the kernel modules it may need. VERSION=v stamps its version. FAULT
# builds a test image for the update's rollback, never one for a router:
# FAULT=unhealthy a router that runs but never reports healthy, FAULT=hang
# an /init that hangs.
INITRAMFS ?= build/initramfs.cpio.gz
INIT_BIN  ?= build/homerouter
FAULT     ?=
image: kernel
	@case "$(FAULT)" in ""|unhealthy|hang) ;; *) echo "FAULT=$(FAULT): want unhealthy or hang"; exit 2;; esac
	@mkdir -p $(dir $(INITRAMFS))
ifeq ($(FAULT),hang)
	$(GO) build -trimpath -o build/init-hang ./internal/lab/cmd/hang
	$(GO) run ./initramfs -init build/init-hang -modules build/kernel/lib/modules/$$(cat build/kernel/VERSION) -o $(INITRAMFS)
else ifeq ($(FAULT),unhealthy)
	$(GO) build -trimpath -tags fault_unhealthy -ldflags '$(LDFLAGS)' -o build/init-unhealthy .
	$(GO) run ./initramfs -init build/init-unhealthy -modules build/kernel/lib/modules/$$(cat build/kernel/VERSION) -o $(INITRAMFS)
else
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(INIT_BIN) .
	$(GO) run ./initramfs -init $(INIT_BIN) -modules build/kernel/lib/modules/$$(cat build/kernel/VERSION) -o $(INITRAMFS)
endif
	cp build/kernel/boot/vmlinuz-$$(cat build/kernel/VERSION) build/vmlinuz

# test-images writes the images the update's image test switches to:
# the same router with another version, and the two faults.
test-images: image
	$(MAKE) image VERSION=$(VERSION)-next INITRAMFS=build/test-images/next.cpio.gz INIT_BIN=build/init-next
	$(MAKE) image FAULT=unhealthy VERSION=$(VERSION)-unhealthy INITRAMFS=build/test-images/unhealthy.cpio.gz
	$(MAKE) image FAULT=hang INITRAMFS=build/test-images/hang.cpio.gz

# update installs build/vmlinuz and build/initramfs.cpio.gz on the router
# at ROUTER (default 192.168.42.1), with its password from
# $$HOMEROUTER_PASSWORD or PASSWORD_FILE.
ROUTER        ?= 192.168.42.1
PASSWORD_FILE ?=
update: image
	$(GO) run . update -router $(ROUTER) -kernel build/vmlinuz -initramfs $(INITRAMFS) $(if $(PASSWORD_FILE),-password-file $(PASSWORD_FILE))

# pxe writes build/pxe/: an iPXE script, the kernel and the initramfs, for
# a TFTP or HTTP server.
pxe: image
	@mkdir -p build/pxe
	cp build/vmlinuz build/initramfs.cpio.gz initramfs/boot.ipxe build/pxe/

# disk writes $(DISK), to dd onto the router's SSD; PERM_DIR=dir seeds its
# perm partition.
disk: image
	sh initramfs/disk.sh $(DISK) build/vmlinuz build/initramfs.cpio.gz $(PERM_DIR)

# demo boots the image under QEMU between the lab's simulated ISP and a
# client namespace, and shows what happens until Ctrl-C.
demo: image
	$(GO) run ./internal/lab/cmd/homerouter-demo -kernel build/vmlinuz -initrd build/initramfs.cpio.gz

lab: deps homerouter
	$(GO) run ./internal/lab/cmd/homerouter-lab -router ./homerouter

# bench has perfdhcp find the highest DHCPv4 DORA rate (>= 99% completed)
# of homerouter's dhcp4d and of dnsmasq, in the same lab topology, and
# prints both and their ratio (TestBenchDHCP); and has iperf3 measure TCP
# from the LAN through the router to the ISP with the full firewall
# ruleset and with none, and prints both and their ratio
# (TestBenchFirewall), and the same in one boot of the image, with the
# flowtable too (TestBenchImageFirewall).
bench: deps image
	@mkdir -p build
	@HOMEROUTER_BENCH=1 HOMEROUTER_LAB=required $(GO) test -v -count=1 -timeout 30m -run '^(TestBenchDHCP|TestBenchFirewall|TestBenchImageFirewall|TestBenchDNS)$$' . > build/bench.log 2>&1; rc=$$?; \
	grep -v -E '^=== |lab\.go:|process\.go:' build/bench.log; \
	exit $$rc

# oui makes the status page's table of MAC vendors again, from Debian's
# ieee-data (the IEEE's registry); the table is committed, so that a build
# needs no ieee-data.
oui:
	@dpkg-query -W -f='$${Status}\n' ieee-data 2>/dev/null | grep -q 'install ok installed' || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ieee-data; }
	cd internal/oui && $(GO) run ./gen -in /usr/share/ieee-data/oui.csv -out oui.tsv.gz

clean:
	rm -f homerouter
	rm -rf build
