agentprov: src/main.c src/cmd/cmd.h src/core/version.h
src/cmd/cmd.h:
src/core/version.h:
