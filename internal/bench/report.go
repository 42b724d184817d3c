package bench

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Row is one figure of the report, measured for the hikvision:// source and
// for go2rtc's stock source on the same simulated device. A nil number is
// "not measured" (n/a); Text, when set, is shown instead of the number.
type Row struct {
	Metric        string   `json:"metric"`
	Unit          string   `json:"unit,omitempty"`
	Hikvision     *float64 `json:"hikvision"`
	Stock         *float64 `json:"stock"`
	HikvisionText string   `json:"hikvision_text,omitempty"`
	StockText     string   `json:"stock_text,omitempty"`
	Ratio         *float64 `json:"ratio"` // Hikvision / Stock; nil when either is missing or Stock is 0
	Note          string   `json:"note,omitempty"`
}

// Section is a group of rows (one measurement of the brief).
type Section struct {
	Name  string   `json:"name"`  // short id used by --only: ttff, recovery, load, talk, logins, gobench
	Title string   `json:"title"` // table heading
	Stock string   `json:"stock"` // the stock source compared against: "rtsp://", "isapi://"
	Rows  []Row    `json:"rows"`
	Notes []string `json:"notes,omitempty"`
	Error string   `json:"error,omitempty"` // the section could not run to the end
}

// GoBench is one line of `go test -bench -benchmem` output.
type GoBench struct {
	Package    string             `json:"package"`
	Name       string             `json:"name"` // without the -GOMAXPROCS suffix
	Procs      int                `json:"procs,omitempty"`
	Iterations int64              `json:"iterations"`
	NsPerOp    float64            `json:"ns_per_op"`
	BytesPerOp *float64           `json:"bytes_per_op,omitempty"`
	AllocsOp   *float64           `json:"allocs_per_op,omitempty"`
	Extra      map[string]float64 `json:"extra,omitempty"` // custom b.ReportMetric units
}

// Report is the whole bench result.
type Report struct {
	Date     time.Time   `json:"date"`
	Quick    bool        `json:"quick"`
	Machine  MachineInfo `json:"machine"`
	Go2rtc   string      `json:"go2rtc"`   // version and patches
	Duration float64     `json:"duration"` // seconds the bench took
	Notes    []string    `json:"notes,omitempty"`
	Sections []Section   `json:"sections"`
	GoBench  []GoBench   `json:"go_bench,omitempty"`
}

const modulePath = "github.com/go2rtc-hikvision/go2rtc-hikvision"

// Num returns a pointer to v (for Row fields).
func Num(v float64) *float64 { return &v }

// Ratio is a/b, nil if either is nil, b is 0, or the result is not finite.
func Ratio(a, b *float64) *float64 {
	if a == nil || b == nil || *b == 0 {
		return nil
	}
	r := *a / *b
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return nil
	}
	return &r
}

// NewRow makes a row with both numbers (either may be nil) and their ratio.
func NewRow(metric, unit string, hik, stock *float64) Row {
	return Row{Metric: metric, Unit: unit, Hikvision: hik, Stock: stock, Ratio: Ratio(hik, stock)}
}

// Median of xs (mean of the middle two for an even count); NaN for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// MinMax of xs; NaN, NaN for none.
func MinMax(xs []float64) (lo, hi float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	lo, hi = xs[0], xs[0]
	for _, x := range xs[1:] {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return lo, hi
}

// ms converts a duration to milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// formatNum prints a figure with 3 significant digits (integers as such).
func formatNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v == math.Trunc(v) && math.Abs(v) < 1e9:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func cell(text string, v *float64) string {
	if text != "" {
		return text
	}
	if v == nil {
		return "n/a"
	}
	return formatNum(*v)
}

// Markdown renders the report as markdown tables, one per section.
func (r *Report) Markdown() string {
	var b strings.Builder
	mode := "full"
	if r.Quick {
		mode = "quick (--quick)"
	}
	fmt.Fprintf(&b, "Bench run %s, %s mode, %.0f s; %d × %s; %s/%s, %s; %s.\n\n",
		r.Date.UTC().Format("2006-01-02 15:04 MST"), mode, r.Duration, r.Machine.NProc, nonEmpty(r.Machine.CPUModel, "unknown CPU"),
		r.Machine.GoOS, r.Machine.GoArch, r.Machine.Go, r.Go2rtc)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n")
	}
	for _, s := range r.Sections {
		fmt.Fprintf(&b, "### %s\n\n", s.Title)
		if s.Error != "" {
			fmt.Fprintf(&b, "**Incomplete:** %s\n\n", s.Error)
		}
		if len(s.Rows) > 0 {
			fmt.Fprintf(&b, "| figure | unit | hikvision:// | stock %s | ratio hik/stock |\n", s.Stock)
			b.WriteString("| --- | --- | ---: | ---: | ---: |\n")
			for _, row := range s.Rows {
				ratio := "–"
				if row.Ratio != nil {
					ratio = fmt.Sprintf("%.2f", *row.Ratio)
				}
				metric := row.Metric
				if row.Note != "" {
					metric += " (" + row.Note + ")"
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", metric, row.Unit,
					cell(row.HikvisionText, row.Hikvision), cell(row.StockText, row.Stock), ratio)
			}
			b.WriteString("\n")
		}
		for _, n := range s.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		if len(s.Notes) > 0 {
			b.WriteString("\n")
		}
	}
	if len(r.GoBench) > 0 {
		b.WriteString("### Go benchmarks (hot paths, -benchmem)\n\n")
		b.WriteString("| package | benchmark | ns/op | B/op | allocs/op | other |\n")
		b.WriteString("| --- | --- | ---: | ---: | ---: | --- |\n")
		for _, g := range r.GoBench {
			var extra []string
			keys := make([]string, 0, len(g.Extra))
			for k := range g.Extra {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				extra = append(extra, formatNum(g.Extra[k])+" "+k)
			}
			pkg := strings.TrimPrefix(strings.TrimPrefix(g.Package, modulePath), "/")
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", nonEmpty(pkg, g.Package), g.Name, formatNum(g.NsPerOp),
				cell("", g.BytesPerOp), cell("", g.AllocsOp), strings.Join(extra, ", "))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
