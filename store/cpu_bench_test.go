package store

import (
	"context"
	"testing"
)

// BenchmarkAppendCPU measures the per-message CPU of Append's transaction
// work without fsync (NoSync set on the test's own file): 256 messages per
// batch, as at 256 writers.
func BenchmarkAppendCPU(b *testing.B) {
	s := openTest(b, Options{})
	s.db.NoSync = true
	const batch = 256
	msgs := make([]Message, 0, b.N+batch)
	for i := range b.N + batch {
		msgs = append(msgs, benchMessage(i))
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		if _, err := s.Append(ctx, msgs[i:i+batch]); err != nil {
			b.Fatal(err)
		}
	}
}
