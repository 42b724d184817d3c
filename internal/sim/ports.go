package sim

// advertisedRTSPPort is the RTSP port adminAccesses reports: Config.AdvertisedRTSPPort, else the
// port the RTSP side listens on.
func (d *Device) advertisedRTSPPort() int {
	if d.cfg.AdvertisedRTSPPort != 0 {
		return d.cfg.AdvertisedRTSPPort
	}
	return portOf(d.rtspAddr)
}
