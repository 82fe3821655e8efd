package enumerators_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/enumerators"
)

// combMem is what one enumeration cost in memory.
type combMem struct {
	items   int64
	mallocs uint64        // heap allocations during the enumeration
	bytes   uint64        // bytes allocated during the enumeration
	peak    uint64        // highest HeapAlloc seen above the heap at the start
	elapsed time.Duration // wall time of the enumeration, sampling included
}

func (m combMem) allocsPerItem() float64 { return float64(m.mallocs) / float64(m.items) }
func (m combMem) bytesPerItem() float64  { return float64(m.bytes) / float64(m.items) }

// combMemCase enumerates n items, calling item once per item.
type combMemCase struct {
	name string
	run  func(ctx context.Context, n int64, item func()) error
}

var combMemCases = []combMemCase{
	{"Range", func(ctx context.Context, n int64, item func()) error {
		return enumerators.Range(0, n, nil).Enumerate(ctx, func(int64, int64) bool {
			item()
			return true
		})
	}},
	{"Batches100", func(ctx context.Context, n int64, item func()) error {
		return enumerators.Batches(enumerators.Range(0, n, nil), 100).Enumerate(ctx, func(batch []int64, _ int64) bool {
			for range batch {
				item()
			}
			return true
		})
	}},
	{"Throttle", func(ctx context.Context, n int64, item func()) error {
		cfg := enumerators.ThrottleConfig{Pressure: func(context.Context) (bool, error) { return false, nil }}
		return enumerators.Throttle(enumerators.Range(0, n, nil), cfg).Enumerate(ctx, func(int64, int64) bool {
			item()
			return true
		})
	}},
	{"Nested1000", func(ctx context.Context, n int64, item func()) error {
		const inner = 1000
		return enumerators.Nested(nil, func(_ context.Context, oc *int64) (enumerators.Enumerator[int64, int64], error) {
			return enumerators.Range(0, n/inner, oc), nil
		}, func(_ context.Context, _ int64, ic *int64) (enumerators.Enumerator[int64, int64], error) {
			return enumerators.Range(0, inner, ic), nil
		}, func(int64) string { return "" }, nil).Enumerate(ctx, func(enumerators.NestedItem[int64, int64], enumerators.NestedCursor[int64, int64]) bool {
			item()
			return true
		})
	}},
}

// combMeasure runs c over n items after a GC and reports the allocations and
// the peak heap, sampled every sampleEvery items.
func combMeasure(ctx context.Context, c combMemCase, n, sampleEvery int64) (combMem, error) {
	var ms runtime.MemStats
	var seen int64
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, mallocs, bytes := ms.HeapAlloc, ms.Mallocs, ms.TotalAlloc
	peak := base
	start := time.Now()
	err := c.run(ctx, n, func() {
		seen++
		if seen%sampleEvery == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	})
	elapsed := time.Since(start)
	runtime.ReadMemStats(&ms)
	peak = max(peak, ms.HeapAlloc)
	return combMem{
		items:   seen,
		mallocs: ms.Mallocs - mallocs,
		bytes:   ms.TotalAlloc - bytes,
		peak:    peak - base,
		elapsed: elapsed,
	}, err
}

// Memory stays flat in the number of items: enumerating 10M items holds no
// more heap than 1M (no item, batch or cursor is retained), Range and
// Throttle allocate nothing per item, Batches one slice per batch.
//
// Not parallel on purpose: heap figures are per process, and Go runs
// parallel tests only after the sequential ones, so this one runs alone.
func TestMemoryFlatInItems(t *testing.T) {
	if testing.Short() {
		t.Skip("enumerates 10M items per case")
	}
	const (
		small       = 1_000_000
		large       = 10_000_000
		sampleEvery = 1 << 16
		mib         = 1 << 20
	)
	for _, c := range combMemCases {
		t.Run(c.name, func(t *testing.T) {
			s, err := combMeasure(t.Context(), c, small, sampleEvery)
			require.NoError(t, err)
			l, err := combMeasure(t.Context(), c, large, sampleEvery)
			require.NoError(t, err)
			require.Equal(t, int64(small), s.items)
			require.Equal(t, int64(large), l.items)
			t.Logf("%s: 1M items: peak heap +%d KiB; 10M items: peak heap +%d KiB, %.4f allocs/item, %.2f B/item, %.1f ns/item",
				c.name, s.peak/1024, l.peak/1024, l.allocsPerItem(), l.bytesPerItem(), float64(l.elapsed.Nanoseconds())/large)

			// Ten times the items, not ten times the heap: retaining even
			// one byte per item would add 10 MiB here.
			require.LessOrEqual(t, l.peak, 2*s.peak+4*mib, "peak heap grows with the number of items")
			require.Less(t, l.peak, uint64(16*mib), "peak heap for 10M items")

			switch c.name {
			case "Range", "Throttle":
				require.Less(t, l.mallocs, uint64(100), "allocations must not depend on the number of items")
			case "Batches100":
				// One fresh slice of 100 int64 per batch (896 B size class).
				require.LessOrEqual(t, l.mallocs, uint64(large/100+100))
				require.Less(t, l.bytesPerItem(), 10.0)
			case "Nested1000":
				// One inner cursor per item, plus the inner enumerator per
				// outer item: garbage, never retained.
				require.Less(t, l.allocsPerItem(), 1.1)
			}
		})
	}
}

// BenchmarkMemory10M enumerates 10M items per operation through each
// combinator over Range and reports, per item, the time, the allocations and
// the bytes allocated, the peak heap above the starting heap, and the time
// of Range alone measured in the same run (x-range is the ratio: the
// combinator's overhead).
//
//	go test -run '^$' -bench Memory10M -benchtime 5x ./enumerators/
func BenchmarkMemory10M(b *testing.B) {
	const n = 10_000_000
	baseline := combMemCases[0]
	for _, c := range combMemCases {
		b.Run(c.name, func(b *testing.B) {
			var (
				total, base    time.Duration
				peak           uint64
				mallocs, bytes uint64
				runs           int
			)
			for b.Loop() {
				r, err := combMeasure(b.Context(), baseline, n, 1<<20)
				if err != nil {
					b.Fatal(err)
				}
				base += r.elapsed

				m, err := combMeasure(b.Context(), c, n, 1<<20)
				if err != nil {
					b.Fatal(err)
				}
				if m.items != n {
					b.Fatalf("%d items, want %d", m.items, n)
				}
				total += m.elapsed
				peak = max(peak, m.peak)
				mallocs += m.mallocs
				bytes += m.bytes
				runs++
			}
			items := float64(n) * float64(runs)
			b.ReportMetric(float64(total.Nanoseconds())/items, "ns/item")
			b.ReportMetric(float64(base.Nanoseconds())/items, "range-ns/item")
			b.ReportMetric(float64(total)/float64(base), "x-range")
			b.ReportMetric(float64(mallocs)/items, "allocs/item")
			b.ReportMetric(float64(bytes)/items, "B/item")
			b.ReportMetric(float64(peak)/1024, "peak-heap-KiB")
		})
	}
}
