# make test is the one command that proves the tree: formatting, vet,
# staticcheck, and every Go test with the race detector, with the real mail
# stack started when the machine allows it. .ci/run calls exactly this.
SHELL := /bin/bash
GO ?= go
STATICCHECK_VERSION ?= v0.8.2
FUZZTIME ?= 5m

.PHONY: test check fmt-check vet staticcheck gotest fuzz soak demo build

test:
	bash scripts/test.sh

check: fmt-check vet staticcheck

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

gotest:
	$(GO) test -race -count=1 ./...

build:
	$(GO) build -o bin/ ./cmd/...

demo:
	$(GO) run ./cmd/jirabridge demo

# Longer runs, not part of make test.
fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

# The randomized and fault tests run thousands of changes instead of
# hundreds with JIRABRIDGE_SOAK=1 (no -race: the sizes are the point).
soak:
	JIRABRIDGE_SOAK=1 JIRABRIDGE_SEED=random $(GO) test -count=1 -timeout 90m ./...
