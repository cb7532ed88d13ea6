package file

import "time"

// SetClock replaces the connector's time source (tests).
func (c *Connector) SetClock(now func() time.Time) { c.now = now }
