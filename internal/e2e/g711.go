package e2e

// G.711 µ-law (ITU-T G.711), for checking what reached a device's talk line.

// MulawToLinear decodes one µ-law byte to 16-bit PCM.
func MulawToLinear(b byte) int16 {
	u := ^b
	v := (int32(u&0x0F)<<3 + 0x84) << ((u >> 4) & 7)
	v -= 0x84
	if u&0x80 != 0 {
		return int16(-v)
	}
	return int16(v)
}

// LinearToMulaw encodes one 16-bit PCM sample as µ-law.
func LinearToMulaw(s int16) byte {
	const bias, clip = 0x84, 32635
	v := int32(s)
	sign := byte(0)
	if v < 0 {
		v, sign = -v, 0x80
	}
	v = min(v, clip) + bias
	exp := byte(7)
	for mask := int32(0x4000); v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := byte(v>>(exp+3)) & 0x0F
	return ^(sign | exp<<4 | mant)
}

// MulawHz is the frequency of µ-law audio (8 kHz) by its zero crossings.
func MulawHz(b []byte) float64 {
	crossings, prev := 0, int16(0)
	for _, u := range b {
		v := MulawToLinear(u)
		if (prev < 0) != (v < 0) && v != 0 {
			crossings++
		}
		if v != 0 {
			prev = v
		}
	}
	return float64(crossings) / 2 / (float64(len(b)) / 8000)
}
