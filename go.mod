module github.com/go2rtc-hikvision/go2rtc-hikvision

go 1.24.0
