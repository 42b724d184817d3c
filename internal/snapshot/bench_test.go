package snapshot_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/snapshot"
)

func cachedForBench(b *testing.B) *snapshot.Cache {
	img := frame(b)
	c := snapshot.New(func(context.Context, int, int) ([]byte, error) { return img, nil },
		snapshot.Options{MinInterval: time.Hour})
	b.Cleanup(c.Close)
	if _, err := c.Get(context.Background(), 0, 0); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkCachedGet is a Get answered from the cache (within MinInterval).
func BenchmarkCachedGet(b *testing.B) {
	c := cachedForBench(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := c.Get(ctx, 0, 0)
		if err != nil || len(res.JPEG) == 0 {
			b.Fatal(res, err)
		}
	}
	if st := c.Stats(); st.DeviceRequests != 1 {
		b.Fatalf("device requests %d", st.DeviceRequests)
	}
}

// BenchmarkCachedGetParallel is the same with callers on every CPU.
func BenchmarkCachedGetParallel(b *testing.B) {
	c := cachedForBench(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := c.Get(ctx, 0, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkCachedServeHTTP is a whole cached HTTP answer (query parsing, Get,
// headers, body) without the network.
func BenchmarkCachedServeHTTP(b *testing.B) {
	c := cachedForBench(b)
	r := httptest.NewRequest("GET", "/api/hikvision/snapshot?src=cam", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := &discard{h: http.Header{}}
		c.ServeHTTP(w, r)
		if w.h.Get("Content-Type") != "image/jpeg" {
			b.Fatal(w.h)
		}
	}
}
