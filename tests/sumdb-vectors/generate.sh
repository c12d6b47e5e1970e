#!/bin/sh
# Regenerates crates/gomod/src/sumdb/testdata/vectors.json with Go's own
# golang.org/x/mod/sumdb (Debian: apt-get install golang-golang-x-mod-dev),
# offline, in GOPATH mode.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= go run "$here/main.go" > "$here/../../crates/gomod/src/sumdb/testdata/vectors.json"
