# Builds rstcp with cargo and installs it.
#
#   make                         cargo build --release (as yourself)
#   sudo make install            into PREFIX (default /usr/local)
#   make install PREFIX=/usr DESTDIR=/tmp/stage   staged, for a package
#   sudo make uninstall          removes what install put there
#
# install does not build (so `sudo make install` needs no cargo for root):
# it copies what `make` left in target/release. The copies are stripped of
# debug info (strip --strip-debug: symbol names stay, for backtraces);
# target/release keeps its line tables (Cargo.toml's debug = 1) for the
# tests' backtraces and for profiling.

PREFIX       ?= /usr/local
DESTDIR      ?=
BINDIR       ?= $(PREFIX)/bin
# rstcp-run finds librstcp_preload.so in ../lib beside itself.
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

CARGO    ?= cargo
INSTALL  ?= install
STRIP    ?= strip
# Run after a real install as root, so the loader's cache knows the new
# librstcp.so.0 (/usr/local/lib is found only through it); LDCONFIG=: skips.
LDCONFIG ?= ldconfig

TOP     := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
RELEASE := $(or $(CARGO_TARGET_DIR),$(TOP)/target)/release
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' $(TOP)/Cargo.toml | head -n 1)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))
# The SONAME build.rs gives the library.
SONAME  := librstcp.so.$(MAJOR)

# Programs from cargo: the shim's launcher and the socket table viewer.
PROGRAMS           := rstcp-run rstcp-stat
INSTALLED_PROGRAMS := $(PROGRAMS)

BUILT := $(RELEASE)/librstcp.so $(RELEASE)/librstcp.a \
	$(RELEASE)/librstcp_preload.so $(addprefix $(RELEASE)/,$(PROGRAMS))

D := $(DESTDIR)

.PHONY: all install uninstall check-built
all:
	cd $(TOP) && $(CARGO) build --release
	@# Programs linked in the tree find the library under its SONAME.
	ln -sf librstcp.so $(RELEASE)/$(SONAME)

check-built:
	@for f in $(BUILT); do \
		[ -e "$$f" ] || { echo "missing $$f: run 'make' first" >&2; exit 1; }; \
	done

install: check-built
	$(INSTALL) -d $(D)$(BINDIR) $(D)$(LIBDIR) $(D)$(INCLUDEDIR) $(D)$(PKGCONFIGDIR)
	$(INSTALL) -m 644 $(TOP)/include/rstcp.h $(D)$(INCLUDEDIR)/rstcp.h
	$(INSTALL) -m 755 $(RELEASE)/librstcp.so $(D)$(LIBDIR)/librstcp.so.$(VERSION)
	ln -sf librstcp.so.$(VERSION) $(D)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(D)$(LIBDIR)/librstcp.so
	$(INSTALL) -m 644 $(RELEASE)/librstcp.a $(D)$(LIBDIR)/librstcp.a
	$(INSTALL) -m 755 $(RELEASE)/librstcp_preload.so $(D)$(LIBDIR)/librstcp_preload.so
	$(STRIP) --strip-debug $(D)$(LIBDIR)/librstcp.so.$(VERSION) $(D)$(LIBDIR)/librstcp.a \
		$(D)$(LIBDIR)/librstcp_preload.so
	for p in $(INSTALLED_PROGRAMS); do \
		$(INSTALL) -m 755 $(RELEASE)/$$p $(D)$(BINDIR)/$$p && \
		$(STRIP) --strip-debug $(D)$(BINDIR)/$$p || exit 1; \
	done
	sed -e 's|@PREFIX@|$(PREFIX)|' \
		-e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|' \
		-e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|' \
		-e 's|@VERSION@|$(VERSION)|' \
		$(TOP)/rstcp.pc.in > $(D)$(PKGCONFIGDIR)/rstcp.pc
	chmod 644 $(D)$(PKGCONFIGDIR)/rstcp.pc
	if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then $(LDCONFIG); fi

uninstall:
	rm -f $(D)$(INCLUDEDIR)/rstcp.h $(D)$(LIBDIR)/librstcp.so.$(VERSION) \
		$(D)$(LIBDIR)/$(SONAME) $(D)$(LIBDIR)/librstcp.so $(D)$(LIBDIR)/librstcp.a \
		$(D)$(LIBDIR)/librstcp_preload.so $(D)$(PKGCONFIGDIR)/rstcp.pc \
		$(addprefix $(D)$(BINDIR)/,$(PROGRAMS))
