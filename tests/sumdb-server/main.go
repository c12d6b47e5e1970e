// Command sumdb-server is the checksum database the end-to-end tests run:
// Go's own golang.org/x/mod/sumdb server over a fixed set of records, signed
// with its own key. The harness (tests/src/sumdb.rs) builds it offline in
// GOPATH mode against Debian's golang-golang-x-mod-dev.
//
// It prints "vkey <verifier key>" and "listen <host:port>", then serves
// /lookup/, /latest and /tile/ and counts requests per path (GET /_counts).
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type db struct {
	signer  note.Signer
	records [][]byte
	ids     map[module.Version]int64
	hashes  []tlog.Hash
}

func (d *db) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x >= int64(len(d.hashes)) {
			return nil, fmt.Errorf("hash %d not stored", x)
		}
		out[i] = d.hashes[x]
	}
	return out, nil
}

func (d *db) add(m module.Version, text string) {
	id := int64(len(d.records))
	hashes, err := tlog.StoredHashes(id, []byte(text), d)
	check(err)
	d.hashes = append(d.hashes, hashes...)
	d.records = append(d.records, []byte(text))
	d.ids[m] = id
}

func (d *db) Signed(ctx context.Context) ([]byte, error) {
	n := int64(len(d.records))
	h, err := tlog.TreeHash(n, d)
	if err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: string(tlog.FormatTree(tlog.Tree{N: n, Hash: h}))}, d.signer)
}

func (d *db) ReadRecords(ctx context.Context, id, n int64) ([][]byte, error) {
	if id < 0 || id+n > int64(len(d.records)) {
		return nil, os.ErrNotExist
	}
	return d.records[id : id+n], nil
}

func (d *db) Lookup(ctx context.Context, m module.Version) (int64, error) {
	id, ok := d.ids[m]
	if !ok {
		return 0, os.ErrNotExist
	}
	return id, nil
}

func (d *db) ReadTileData(ctx context.Context, t tlog.Tile) ([]byte, error) {
	if t.N<<uint(t.H)+int64(t.W) > int64(len(d.records))>>uint(t.L*t.H) {
		return nil, os.ErrNotExist
	}
	return tlog.ReadTileData(t, d)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	name := flag.String("name", "sumdb.test", "database name")
	keyFile := flag.String("keyfile", "", "signer key file (created when missing)")
	records := flag.String("records", "", "file of `path version h1:zip h1:mod` lines")
	filler := flag.Int("filler", 0, "records of made-up modules stored before the real ones")
	fork := flag.Bool("fork", false, "change the first filler record: a log inconsistent with the honest one")
	extra := flag.Int("extra", 0, "records of made-up modules appended after the real ones (the log grew)")
	flag.Parse()

	skey := ""
	if data, err := os.ReadFile(*keyFile); err == nil {
		skey = strings.TrimSpace(string(data))
	} else {
		var err error
		skey, _, err = note.GenerateKey(rand.Reader, *name)
		check(err)
		check(os.WriteFile(*keyFile, []byte(skey+"\n"), 0o600))
	}
	signer, err := note.NewSigner(skey)
	check(err)
	vkey := verifierKey(skey)

	d := &db{signer: signer, ids: map[module.Version]int64{}}
	for i := 0; i < *filler; i++ {
		m := module.Version{Path: fmt.Sprintf("filler.test/m%d", i), Version: "v1.0.0"}
		zipHash := "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
		if i == 0 && *fork {
			zipHash = "h1:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB="
		}
		d.add(m, fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", m.Path, m.Version, zipHash, m.Path, m.Version, zipHash))
	}
	f, err := os.Open(*records)
	check(err)
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) != 4 {
			continue
		}
		m := module.Version{Path: fields[0], Version: fields[1]}
		d.add(m, fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", m.Path, m.Version, fields[2], m.Path, m.Version, fields[3]))
	}
	check(scanner.Err())
	for i := 0; i < *extra; i++ {
		m := module.Version{Path: fmt.Sprintf("extra.test/m%d", i), Version: "v1.0.0"}
		zipHash := "h1:CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC="
		d.add(m, fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", m.Path, m.Version, zipHash, m.Path, m.Version, zipHash))
	}

	var mu sync.Mutex
	counts := map[string]int{}
	srv := sumdb.NewServer(d)
	mux := http.NewServeMux()
	for _, path := range sumdb.ServerPaths {
		mux.Handle(path, srv)
	}
	mux.HandleFunc("/_counts", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		json.NewEncoder(w).Encode(counts)
	})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_counts" {
			mu.Lock()
			counts[r.URL.Path]++
			mu.Unlock()
			log.Printf("GET %s", r.URL.Path)
		}
		mux.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", *listen)
	check(err)
	fmt.Printf("vkey %s\nlisten %s\n", vkey, ln.Addr())
	os.Stdout.Sync()
	check(http.Serve(ln, handler))
}

// verifierKey derives the verifier key from a signer key
// (PRIVATE+KEY+name+hash+base64(alg‖seed)).
func verifierKey(skey string) string {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		log.Fatalf("malformed signer key")
	}
	signer, err := note.NewSigner(skey)
	check(err)
	seed := decode(parts[4])[1:]
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), ed25519Public(seed))
	check(err)
	return vkey
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
