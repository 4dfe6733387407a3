package jql

import (
	"cmp"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// dateLayouts are the absolute formats JQL accepts: minute precision at
// most, never seconds.
var dateLayouts = []struct {
	layout string
	day    bool
}{
	{"2006/1/2 15:04", false},
	{"2006-1-2 15:04", false},
	{"2006/1/2", true},
	{"2006-1-2", true},
}

var periodRe = regexp.MustCompile(`^([-+]?)\s*((?:[0-9]+\s*[wdhm]\s*)+)$`)
var periodPartRe = regexp.MustCompile(`([0-9]+)\s*([wdhm])`)

func dateErr(value, field string) string {
	return "Date value '" + value + "' for field '" + field + "' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
}

// parseDate reads a JQL date value: an absolute date (start of day when it
// has no time), a period relative to now such as "-5m" or "4w 2d", or
// milliseconds since the epoch.
func parseDate(s string, loc *time.Location, now time.Time) (t time.Time, ok bool) {
	s = strings.TrimSpace(s)
	if isDigits(s) && len(s) > 8 {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		return time.UnixMilli(ms).In(loc), true
	}
	if m := periodRe.FindStringSubmatch(s); m != nil {
		var d time.Duration
		for _, part := range periodPartRe.FindAllStringSubmatch(m[2], -1) {
			n, err := strconv.ParseInt(part[1], 10, 32)
			if err != nil {
				return time.Time{}, false
			}
			unit := map[string]time.Duration{"w": 7 * 24 * time.Hour, "d": 24 * time.Hour, "h": time.Hour, "m": time.Minute}[part[2]]
			d += time.Duration(n) * unit
		}
		if m[1] == "-" {
			d = -d
		}
		return now.Add(d), true
	}
	for _, l := range dateLayouts {
		if t, err := time.ParseInLocation(l.layout, s, loc); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func sameDay(a, b time.Time, loc *time.Location) int {
	a, b = a.In(loc), b.In(loc)
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	switch {
	case ay != by:
		return cmp.Compare(ay, by)
	case am != bm:
		return cmp.Compare(int(am), int(bm))
	default:
		return cmp.Compare(ad, bd)
	}
}
