package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// The admin API, version 1. Every endpoint answers JSON (the Ops result types
// document the shapes) except the backup, which streams the store file.
// Errors are {"error": "..."} with 400 (a bad parameter; the message names it
// and its expected form), 404 (unknown message, destination or entry), 409
// (the operation does not fit the current state) or 500.
//
//	GET  /api/v1/messages                     MessageList   (since until type control_id patient_id sending_facility state after limit)
//	GET  /api/v1/messages/{seq}               MessageDetail
//	POST /api/v1/messages/resend              ResendResult  (body ResendRequest)
//	GET  /api/v1/rejected                     RejectedList  (after limit)
//	GET  /api/v1/rejected/{id}                RejectedDetail
//	GET  /api/v1/dead-letters                 DeadLetterList (destination after limit)
//	GET  /api/v1/dead-letters/{dest}/{id}     DeadLetterDetail
//	POST /api/v1/dead-letters/{dest}/resend   ResendResult  (body {"ids": [...]} or {"all": true})
//	POST /api/v1/dead-letters/{dest}/purge    PurgeResult   (body {"older_than": RFC 3339})
//	POST /api/v1/dead-letters/purge           PurgeResult   (every destination's)
//	GET  /api/v1/destinations                 []DestinationStatus
//	POST /api/v1/destinations/{name}/unblock  DestinationStatus
//	POST /api/v1/destinations/{name}/skip     SkipResult
//	GET  /api/v1/info                         Info
//	GET  /api/v1/backup                       the store file (application/octet-stream)
//
// The mux is behind the bearer-token check and the access log (admin.go);
// each change is logged once more here with what it touched (seqs,
// destination), never message content.

// BackupBytesTrailer is the HTTP trailer of GET /api/v1/backup that carries
// the number of bytes streamed; a client compares it with what it received.
const BackupBytesTrailer = "Mllpd-Backup-Bytes"

// maxBodyBytes bounds a request body (a resend of maxResend seqs fits).
const maxBodyBytes = 4 << 20

// DeadLetterResendRequest is the body of POST /api/v1/dead-letters/{dest}/resend.
type DeadLetterResendRequest struct {
	IDs []uint64 `json:"ids,omitempty"`
	All bool     `json:"all,omitempty"`
}

// PurgeRequest is the body of POST /api/v1/dead-letters/{dest}/purge.
type PurgeRequest struct {
	OlderThan time.Time `json:"older_than"`
}

// ops returns the admin operations over the daemon's store and the config in
// force now (a reload changes the destinations).
func (d *Daemon) ops() *Ops {
	return &Ops{Store: d.store, Config: d.cfg.Load(), Notify: d.notify}
}

// registerAPI adds the token-protected admin endpoints under /api/.
func (d *Daemon) registerAPI(mux *http.ServeMux) {
	registerAdminAPI(mux, d.logger.Named("admin"), d.ops)
}

// registerAdminAPI adds the endpoints over the Ops that ops returns for
// each request (the config in force may change between requests).
func registerAdminAPI(mux *http.ServeMux, log *zap.Logger, ops func() *Ops) {
	mux.HandleFunc("GET /api/v1/messages", func(w http.ResponseWriter, r *http.Request) {
		f, err := messageFilter(r)
		if err != nil {
			writeError(w, log, err)
			return
		}
		res, err := ops().ListMessages(r.Context(), f)
		writeResult(w, log, res, err)
	})
	mux.HandleFunc("GET /api/v1/messages/{seq}", func(w http.ResponseWriter, r *http.Request) {
		seq, err := pathUint(r, "seq", "a message sequence number")
		if err != nil {
			writeError(w, log, err)
			return
		}
		res, err := ops().ShowMessage(r.Context(), seq)
		writeResult(w, log, res, err)
	})
	mux.HandleFunc("POST /api/v1/messages/resend", func(w http.ResponseWriter, r *http.Request) {
		var req ResendRequest
		if err := readJSON(w, r, &req); err != nil {
			writeError(w, log, err)
			return
		}
		var res ResendResult
		var err error
		switch {
		case len(req.Seqs) > 0 && (!req.Since.IsZero() || !req.Until.IsZero() || req.Type != ""):
			err = badRequest("give either seqs or since/until/type, not both")
		case len(req.Seqs) > 0:
			res, err = ops().Resend(changeContext(r), req.Seqs, req.To)
		default:
			res, err = ops().ResendRange(changeContext(r), req.Since, req.Until, req.Type, req.To)
		}
		logResend(log, r, "admin resend", req.To, res, err)
		writeResult(w, log, res, err)
	})
	mux.HandleFunc("GET /api/v1/rejected", func(w http.ResponseWriter, r *http.Request) {
		after, limit, err := paging(r)
		if err != nil {
			writeError(w, log, err)
			return
		}
		res, err := ops().ListRejected(r.Context(), after, limit)
		writeResult(w, log, res, err)
	})
	mux.HandleFunc("GET /api/v1/rejected/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := pathUint(r, "id", "a rejected-input id")
		if err != nil {
			writeError(w, log, err)
			return
		}
		res, err := ops().ShowRejected(r.Context(), id)
		writeResult(w, log, res, err)
	})
	mux.HandleFunc("GET /api/v1/dead-letters", func(w http.ResponseWriter, r *http.Request) {
		after, limit, err := paging(r)
		if err != nil {
			writeError(w, log, err)
			return
		}
		res, err := ops().ListDeadLetters(r.Context(), r.URL.Query().Get("destination"), after, limit)
		writeResult(w, log, res, err)
	})
	mux.HandleFunc("GET /api/v1/dead-letters/{dest}/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := pathUint(r, "id", "a dead-letter id")
		if err != nil {
			writeError(w, log, err)
			return
		}
		res, err := ops().ShowDeadLetter(r.Context(), r.PathValue("dest"), id)
		writeResult(w, log, res, err)
	})
	mux.HandleFunc("POST /api/v1/dead-letters/{dest}/resend", func(w http.ResponseWriter, r *http.Request) {
		var req DeadLetterResendRequest
		if err := readJSON(w, r, &req); err != nil {
			writeError(w, log, err)
			return
		}
		dest := r.PathValue("dest")
		var res ResendResult
		var err error
		switch {
		case len(req.IDs) == 0 && !req.All:
			err = badRequest(`name the dead letters to resend: {"ids": [...]} or {"all": true}`)
		case len(req.IDs) > 0 && req.All:
			err = badRequest(`give either ids or all, not both`)
		default:
			res, err = ops().ResendDeadLetters(changeContext(r), dest, req.IDs)
		}
		logResend(log, r, "admin dead-letter resend", dest, res, err)
		writeResult(w, log, res, err)
	})
	purge := func(w http.ResponseWriter, r *http.Request) {
		var req PurgeRequest
		if err := readJSON(w, r, &req); err != nil {
			writeError(w, log, err)
			return
		}
		dest := r.PathValue("dest") // "" on /dead-letters/purge: every destination
		res, err := ops().PurgeDeadLetters(changeContext(r), dest, req.OlderThan)
		log.Info("admin purge", zap.String("peer", r.RemoteAddr), zap.String("destination", dest),
			zap.Time("older_than", req.OlderThan), zap.Int("purged", res.Purged), zap.Error(err))
		writeResult(w, log, res, err)
	}
	mux.HandleFunc("POST /api/v1/dead-letters/{dest}/purge", purge)
	mux.HandleFunc("POST /api/v1/dead-letters/purge", purge)
	mux.HandleFunc("GET /api/v1/destinations", func(w http.ResponseWriter, r *http.Request) {
		res, err := ops().Destinations(r.Context())
		writeResult(w, log, res, err)
	})
	mux.HandleFunc("POST /api/v1/destinations/{name}/unblock", func(w http.ResponseWriter, r *http.Request) {
		dest := r.PathValue("name")
		res, err := ops().Unblock(changeContext(r), dest)
		log.Info("admin unblock", zap.String("peer", r.RemoteAddr), zap.String("destination", dest), zap.Error(err))
		writeResult(w, log, res, err)
	})
	mux.HandleFunc("POST /api/v1/destinations/{name}/skip", func(w http.ResponseWriter, r *http.Request) {
		dest := r.PathValue("name")
		res, err := ops().Skip(changeContext(r), dest)
		log.Info("admin skip", zap.String("peer", r.RemoteAddr), zap.String("destination", dest),
			zap.Uint64("seq", res.Skipped.Seq), zap.Uint64("queue_id", res.Skipped.QueueID), zap.Error(err))
		writeResult(w, log, res, err)
	})
	mux.HandleFunc("GET /api/v1/info", func(w http.ResponseWriter, r *http.Request) {
		res, err := ops().Info(r.Context())
		writeResult(w, log, res, err)
	})
	mux.HandleFunc("GET /api/v1/backup", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="mllpd.db"`)
		w.Header().Set("Trailer", BackupBytesTrailer)
		w.WriteHeader(http.StatusOK)
		n, err := ops().Backup(r.Context(), w)
		log.Info("admin backup", zap.String("peer", r.RemoteAddr), zap.Int64("bytes", n), zap.Error(err))
		if err != nil {
			// The status is out; breaking the stream makes the client see a
			// truncated body instead of a short file that looks complete.
			panic(http.ErrAbortHandler)
		}
		w.Header().Set(BackupBytesTrailer, strconv.FormatInt(n, 10))
	})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, log, notFound("no admin endpoint %s %s; the API is under /api/v1/", r.Method, r.URL.Path))
	})
}

// changeContext is the context of a change: it does not end when the client
// goes away, so a resend or purge that started runs to the end and its log
// line says what it did, instead of stopping half way unseen (a retried
// half-done backfill would send some messages twice).
func changeContext(r *http.Request) context.Context {
	return context.WithoutCancel(r.Context())
}

// logResend records what a resend queued: the destination, how many, and
// (bounded) which seqs.
func logResend(log *zap.Logger, r *http.Request, what, dest string, res ResendResult, err error) {
	seqs := make([]uint64, 0, min(len(res.Queued), 100))
	for _, q := range res.Queued[:min(len(res.Queued), 100)] {
		seqs = append(seqs, q.Seq)
	}
	log.Info(what, zap.String("peer", r.RemoteAddr), zap.String("destination", dest),
		zap.Int("queued", len(res.Queued)), zap.Uint64s("seqs", seqs), zap.Int("skipped", len(res.Skipped)), zap.Error(err))
}

// messageFilter reads GET /api/v1/messages' query parameters.
func messageFilter(r *http.Request) (MessageFilter, error) {
	q := r.URL.Query()
	var f MessageFilter
	var err error
	if f.Since, err = queryTime(q.Get("since"), "since"); err != nil {
		return f, err
	}
	if f.Until, err = queryTime(q.Get("until"), "until"); err != nil {
		return f, err
	}
	if f.After, f.Limit, err = paging(r); err != nil {
		return f, err
	}
	f.Type = q.Get("type")
	f.ControlID = q.Get("control_id")
	f.PatientID = q.Get("patient_id")
	f.SendingFacility = q.Get("sending_facility")
	f.State = q.Get("state")
	return f, f.Validate()
}

func queryTime(s, name string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, badRequest("%s=%q is not an RFC 3339 time (e.g. 2024-01-31T12:00:00Z)", name, s)
	}
	return t, nil
}

func paging(r *http.Request) (after uint64, limit int, err error) {
	q := r.URL.Query()
	if s := q.Get("after"); s != "" {
		if after, err = strconv.ParseUint(s, 10, 64); err != nil {
			return 0, 0, badRequest("after=%q is not a number (the next value of the previous page)", s)
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return 0, 0, badRequest("limit=%q is not a positive number", s)
		}
		limit = n
	}
	return after, limit, nil
}

func pathUint(r *http.Request, name, what string) (uint64, error) {
	s := r.PathValue(name)
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, badRequest("%q is not %s", s, what)
	}
	return n, nil
}

// readJSON decodes a bounded request body strictly: an unknown field is a
// typo the caller should hear about, not a silently ignored option.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return badRequest("empty request body: send a JSON object")
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &AdminError{Code: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("request body over %d bytes", maxBodyBytes)}
		}
		return badRequest("request body: %v", err)
	}
	if dec.More() {
		return badRequest("request body: one JSON object expected")
	}
	return nil
}

func writeResult(w http.ResponseWriter, log *zap.Logger, v any, err error) {
	if err != nil {
		writeError(w, log, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func writeError(w http.ResponseWriter, log *zap.Logger, err error) {
	var ae *AdminError
	if errors.As(err, &ae) {
		writeJSON(w, ae.Code, map[string]string{"error": ae.Msg})
		return
	}
	// Internal: logged here, once; the caller gets the text, which holds
	// locations and sentinels only (store errors carry no message content).
	log.Error("admin request failed", zap.Error(err))
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store") // responses can hold patient data
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the status is out; a write error means the client went away
}
