package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mllpd/mllpd/store"
)

// fillStore writes n messages to a new store at path and closes it.
func fillStore(t *testing.T, path string, n int) {
	t.Helper()
	st, err := store.Open(store.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range n {
		id := "K" + string(rune('A'+i%26))
		_, err := st.Append(context.Background(), []store.Message{{
			Raw: []byte(sentADT(id)), Received: time.Now(), Listener: "pas", ControlID: id, Type: "ADT", Event: "A01",
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestCompactStore(t *testing.T) {
	db := filepath.Join(t.TempDir(), "mllpd.db")
	fillStore(t, db, 5)
	for _, keep := range []bool{true, false} {
		before, after, err := compactStore(db, keep)
		if err != nil {
			t.Fatal(err)
		}
		if before <= 0 || after <= 0 {
			t.Errorf("sizes %d -> %d", before, after)
		}
		_, err = os.Stat(db + ".bak")
		if keep != (err == nil) {
			t.Errorf("keep %v: .bak stat err %v", keep, err)
		}
		if _, err := os.Stat(db + ".compact"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf(".compact left behind: %v", err)
		}
		assertStoreHas(t, db, []string{"KA", "KB", "KC", "KD", "KE"})
	}
}

func TestCompactStoreLocked(t *testing.T) {
	db := filepath.Join(t.TempDir(), "mllpd.db")
	fillStore(t, db, 1)
	st, err := store.Open(store.Options{Path: db}) // as a running daemon holds it
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, err := compactStore(db, false); !errors.Is(err, store.ErrLocked) {
		t.Errorf("compact of a locked store: %v, want ErrLocked", err)
	}
	if _, err := os.Stat(db + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf(".compact created for a locked store: %v", err)
	}
}
