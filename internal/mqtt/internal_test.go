package mqtt

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	max := 60 * time.Second
	for _, tc := range []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{1, 0.5, 500 * time.Millisecond},
		{2, 0.5, time.Second},
		{4, 0.5, 4 * time.Second},
		{20, 0.5, max},
		{1, 0, 400 * time.Millisecond},
		{1, 0.999999, 600 * time.Millisecond},
	} {
		if got := backoff(tc.n, max, tc.r); got.Round(time.Millisecond) != tc.want {
			t.Errorf("backoff(%d, %v) = %s, want %s", tc.n, tc.r, got, tc.want)
		}
	}
}

func TestTopicID(t *testing.T) {
	for in, want := range map[string]string{
		"192.168.1.10:80": "192_168_1_10_80",
		"[fe80::1]:443":   "fe80__1__443",
		"Cam-A.local:80":  "cam-a_local_80",
		"LineDetection":   "linedetection",
		"a/b+#":           "a_b",
		"///":             "",
	} {
		if got := topicID(in); got != want {
			t.Errorf("topicID(%q) = %q, want %q", in, got, want)
		}
	}
}
