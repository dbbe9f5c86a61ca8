# Kazashi — build, demo and test entry points.
# The two commands that matter: `make demo` and `make test`.

GO        ?= go
BIN       := bin
CMDS      := ./firmware/cmd/kazashid ./firmware/cmd/kazashi-demo ./hw/cmd/kazashi-sim ./provisioning/cmd/kazashi-pki \
             ./provisioning/cmd/kazashictl ./provisioning/cmd/kazashi-crlbench
FUZZTIME  ?= 4s
# staticcheck, pinned; fetched through the Go module proxy on first use.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
export CGO_ENABLED := 0

.PHONY: all build demo test unit race fuzz-smoke cross bench vet clean

all: build

build:
	$(GO) build -trimpath -o $(BIN)/ $(CMDS)

## demo: the real daemon against the PN532 simulator, embedded broker, test PKI.
demo: build
	$(BIN)/kazashi-demo -bin $(BIN)

## test: vet, the cross builds, the fuzz smoke, then every unit and integration
## test under the race detector (needs gcc; `make unit` runs them without it).
test: vet cross fuzz-smoke race

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) mod tidy -diff
	$(STATICCHECK) ./...

unit:
	$(GO) test -count=1 -timeout 10m ./...

race:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 15m ./...

## fuzz-smoke: every Fuzz target for $(FUZZTIME) each.
fuzz-smoke:
	@./.ci/fuzz-smoke $(FUZZTIME)

cross:
	GOOS=linux GOARCH=arm64 $(GO) build -o /dev/null $(CMDS)
	GOOS=linux GOARCH=arm GOARM=7 $(GO) build -o /dev/null $(CMDS)
	GOOS=linux GOARCH=arm GOARM=6 $(GO) build -o /dev/null $(CMDS)

# bench: every Go benchmark, then the national-scale CRL table (1M and 10M
# entries; generated CRLs are cached in ~/.cache/kazashi-crlbench).
# CRL_SIZES=1000000 for a quicker run.
CRL_SIZES ?= 1000000,10000000
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...
	$(BIN)/kazashi-crlbench -bin $(BIN) -sizes $(CRL_SIZES)

clean:
	rm -rf $(BIN)
