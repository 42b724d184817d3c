package events_test

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/events"
)

// BenchmarkAlertStream decodes a camera stream of 1000 reports (heartbeats and repeats).
func BenchmarkAlertStream(b *testing.B) {
	ct, one := loadFixture(b, "camera_ver20.txt")
	body := bytes.Repeat(one, 250)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		dec := events.NewDecoder(bytes.NewReader(body), ct, nil)
		n := 0
		for {
			if _, err := dec.Next(); err != nil {
				if !errors.Is(err, io.EOF) {
					b.Fatal(err)
				}
				break
			}
			n++
		}
		if n != 1000 {
			b.Fatalf("%d alerts", n)
		}
	}
}

// BenchmarkHostilePart reads one 60 KB part full of closing braces and tags, one byte per read: the
// work per byte must stay constant as the part grows (no rescans of the whole body).
func BenchmarkHostilePart(b *testing.B) {
	for _, size := range []int{15 << 10, 60 << 10} {
		b.Run(strconv.Itoa(size>>10)+"KiB", func(b *testing.B) {
			body := "--x\r\nContent-Type: application/json\r\n\r\n{" + strings.Repeat("{}\n", size/3) + "\r\n--x\r\n" +
				"--x\r\nContent-Type: application/xml\r\nContent-Length: " + strconv.Itoa(size+10) + "\r\n\r\n" + strings.Repeat("<a>\n", size/4)
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				dec := events.NewDecoder(iotest.OneByteReader(strings.NewReader(body)), "multipart/mixed; boundary=x", nil)
				for {
					if _, err := dec.Next(); err != nil {
						break
					}
				}
			}
		})
	}
}
