package sim

import (
	"bytes"
	"image"
	"image/jpeg"
	"sync"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/sim/simrtsp"
)

// mjpegFrames is the number of distinct pictures in one loop of the MJPEG stream (a bar moving across).
const mjpegFrames = 25

var (
	mjpegMu    sync.Mutex
	mjpegCache = map[[2]int]*simrtsp.Video{}
)

// mjpegVideo is the MJPEG sub stream media of the given size (rounded down to multiples of 8, as
// RTP/JPEG carries sizes in blocks of 8), built once per size per process.
func mjpegVideo(width, height int) (*simrtsp.Video, error) {
	width, height = max(8, width/8*8), max(8, height/8*8)
	key := [2]int{width, height}
	mjpegMu.Lock()
	defer mjpegMu.Unlock()
	if v := mjpegCache[key]; v != nil {
		return v, nil
	}
	images := make([][]byte, mjpegFrames)
	for i := range images {
		img := image.NewYCbCr(image.Rect(0, 0, width, height), image.YCbCrSubsampleRatio420)
		for y := range height {
			for x := range width {
				luma := uint8(16 + 200*x/width)
				if x*mjpegFrames/width == i { // the moving bar
					luma = 235
				}
				img.Y[img.YOffset(x, y)] = luma
			}
		}
		for j := range img.Cb {
			img.Cb[j], img.Cr[j] = 128, 128
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 70}); err != nil {
			return nil, err
		}
		images[i] = buf.Bytes()
	}
	v, err := simrtsp.NewMJPEG(images)
	if err != nil {
		return nil, err
	}
	mjpegCache[key] = v
	return v, nil
}
