# Local infrastructure targets (Kafka + PostgreSQL, see deploy/local/README.md).
# Include from the root Makefile:   include deploy/local/infra.mk
#
#   make infra-up       start both (idempotent), print PLUGPAY_* lines
#   make infra-down     stop both
#   make infra-status   exit 0 only if both are running
#   make infra-env      print the PLUGPAY_* lines without starting anything
#
# Use in a shell:  export $(make -s infra-up)

# Directory of this fragment, so it works whatever includes it.
INFRA_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
INFRA := $(INFRA_DIR)/infra.sh

.PHONY: infra-up infra-down infra-status infra-env

infra-up:
	@bash $(INFRA) up

infra-down:
	@bash $(INFRA) down

infra-status:
	@bash $(INFRA) status

infra-env:
	@bash $(INFRA) env
