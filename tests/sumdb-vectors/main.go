// Command sumdb-vectors prints test vectors for Flotilla's checksum-database
// code (crates/gomod/src/sumdb), computed with Go's own golang.org/x/mod/sumdb
// packages. Regenerate with tests/sumdb-vectors/generate.sh.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// seeded is a deterministic "random" source so the vectors are stable.
type seeded struct{ b byte }

func (s *seeded) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = s.b
		s.b += 7
	}
	return len(p), nil
}

type proof struct {
	T      int64       `json:"t"`
	N      int64       `json:"n"`
	Hashes []tlog.Hash `json:"hashes"`
}

type tile struct {
	Path string `json:"path"`
	Data []byte `json:"data"`
}

type vectors struct {
	VerifierKey   string          `json:"verifier_key"`
	SignedNote    string          `json:"signed_note"`
	Records       int64           `json:"records"`
	TreeHashes    []tlog.Hash     `json:"tree_hashes"`
	StoredIndexes [][3]int64      `json:"stored_indexes"`
	RecordProofs  []proof         `json:"record_proofs"`
	TreeProofs    []proof         `json:"tree_proofs"`
	Tiles         []tile          `json:"tiles"`
	TilePaths     map[string]int64 `json:"tile_paths"`
}

func main() {
	skey, vkey, err := note.GenerateKey(&seeded{b: 3}, "vectors.example")
	check(err)
	signer, err := note.NewSigner(skey)
	check(err)

	const n = 600
	var hashes []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = hashes[x]
		}
		return out, nil
	})
	v := vectors{VerifierKey: vkey, Records: n, TilePaths: map[string]int64{}}
	for i := int64(0); i < n; i++ {
		h, err := tlog.StoredHashes(i, []byte(fmt.Sprintf("record %d\n", i)), reader)
		check(err)
		hashes = append(hashes, h...)
		th, err := tlog.TreeHash(i+1, reader)
		check(err)
		v.TreeHashes = append(v.TreeHashes, th)
	}
	signed, err := note.Sign(&note.Note{Text: string(tlog.FormatTree(tlog.Tree{N: n, Hash: v.TreeHashes[n-1]}))}, signer)
	check(err)
	v.SignedNote = string(signed)
	for _, x := range []int64{0, 1, 2, 3, 4, 5, 6, 7, 100, 511, 512, 1000, 1197} {
		l, k := tlog.SplitStoredHashIndex(x)
		v.StoredIndexes = append(v.StoredIndexes, [3]int64{x, int64(l), k})
	}
	for _, tn := range [][2]int64{{1, 0}, {2, 1}, {7, 3}, {300, 0}, {300, 299}, {600, 257}, {600, 599}} {
		p, err := tlog.ProveRecord(tn[0], tn[1], reader)
		check(err)
		v.RecordProofs = append(v.RecordProofs, proof{tn[0], tn[1], p})
	}
	for _, tn := range [][2]int64{{1, 1}, {7, 3}, {300, 256}, {600, 1}, {600, 300}, {600, 599}} {
		p, err := tlog.ProveTree(tn[0], tn[1], reader)
		check(err)
		v.TreeProofs = append(v.TreeProofs, proof{tn[0], tn[1], p})
	}
	for _, t := range tlog.NewTiles(8, 0, n) {
		data, err := tlog.ReadTileData(t, reader)
		check(err)
		if t.W == 256 || t.W == n%256 || t.L == 1 && t.W == n/256 {
			v.Tiles = append(v.Tiles, tile{t.Path(), data})
		}
	}
	for _, t := range []tlog.Tile{{H: 8, L: 0, N: 1234567, W: 256}, {H: 8, L: -1, N: 5, W: 3}, {H: 8, L: 2, N: 1000, W: 255}} {
		v.TilePaths[t.Path()] = t.N
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", " ")
	check(enc.Encode(v))
	os.Stdout.Write(buf.Bytes())
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
