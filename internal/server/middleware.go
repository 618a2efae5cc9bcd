package server

import (
	"net/http"
	"regexp"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/elevatepdp/elevate/internal/httperr"
	"github.com/elevatepdp/elevate/internal/ids"
)

const requestIDHeader = "X-Request-Id"

// A caller's request id is kept only when it is short and plain, since it is
// copied into logs and response headers.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

func (s *Server) requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(requestIDHeader)
		if !requestIDPattern.MatchString(id) {
			id = ids.Request()
		}
		c.Set(requestIDHeader, id)
		c.Header(requestIDHeader, id)
		c.Next()
	}
}

// accessLog writes one line per request at debug level; decision endpoints
// are hot, and the check keeps the cost at nothing when debug is off.
func (s *Server) accessLog() gin.HandlerFunc {
	return func(c *gin.Context) {
		if !s.log.IsLevelEnabled(logrus.DebugLevel) {
			c.Next()
			return
		}
		start := time.Now()
		c.Next()
		s.log.WithFields(logrus.Fields{
			"request_id": c.GetString(requestIDHeader),
			"method":     c.Request.Method,
			"path":       c.Request.URL.Path,
			"status":     c.Writer.Status(),
			"duration":   time.Since(start).Seconds(),
			"client":     c.ClientIP(),
		}).Debug("request")
	}
}

// recovery turns a panic into a plain 500 body and one log line: no stack
// reaches the caller.
func (s *Server) recovery() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.WithFields(logrus.Fields{
					"request_id": c.GetString(requestIDHeader),
					"path":       c.Request.URL.Path,
					"panic":      p,
				}).Error("handler panicked")
				httperr.Abort(c, http.StatusInternalServerError, httperr.New("internal", "internal error"))
			}
		}()
		c.Next()
	}
}
