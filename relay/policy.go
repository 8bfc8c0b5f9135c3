package relay

import "github.com/mllpd/mllpd/hl7"

// A failure is why a listener did not accept a frame or a message. Its NAK
// codes come from one table (reference §5.7), so the policy is changed here
// and nowhere else.
type failure int

const (
	failNoMSH            failure = iota + 1 // payload does not start with MSH
	failBadDelimiters                       // MSH-1/MSH-2 unusable
	failBrokenBatch                         // FHS/BHS envelope broken
	failMissingType                         // MSH-9 missing or without trigger
	failMissingControlID                    // MSH-10 missing
	failBadControlID                        // MSH-10 too long or with control characters
	failTypeNotAccepted                     // MSH-9.1 not in accept.message_types
	failEventNotAccepted                    // MSH-9.2 not accepted for a known type
	failProcessingID                        // MSH-11 not in accept.processing_ids
	failVersion                             // MSH-12 not in accept.versions
	failTooLarge                            // frame over max_message_bytes
	failStore                               // commit or fsync returned an error
	failLowSpace                            // free-space guard
	failBatchesOff                          // FHS/BHS frame with batches: false
	failUnrouted                            // no route and reject_unrouted
	failBatchRejected                       // a valid message of a batch with an invalid one
)

type nakPolicy struct {
	original, enhanced hl7.AckCode
	code               hl7.ErrorCode
	location           string // ERR-2 (v2.5+) / ERR-1 location
	text               string // MSA-3
	reason             string // closed set: metric label and rejected-log reason
	rejectedLog        bool   // keep the raw bytes in the rejected log
}

// nakPolicies is reference §5.7 as a table.
var nakPolicies = map[failure]nakPolicy{
	failNoMSH:            {hl7.AE, hl7.CE, hl7.ErrCodeSegmentSequence, "", "No MSH segment", "no_msh", true},
	failBadDelimiters:    {hl7.AE, hl7.CE, hl7.ErrCodeDataType, "MSH^1^2", "Invalid encoding characters", "bad_delimiters", true},
	failBrokenBatch:      {hl7.AE, hl7.CE, hl7.ErrCodeSegmentSequence, "", "Broken batch envelope", "broken_batch", true},
	failMissingType:      {hl7.AE, hl7.CE, hl7.ErrCodeRequiredFieldMissing, "MSH^1^9", "Missing MSH-9", "missing_msh9", true},
	failMissingControlID: {hl7.AE, hl7.CE, hl7.ErrCodeRequiredFieldMissing, "MSH^1^10", "Missing MSH-10", "missing_msh10", true},
	failBadControlID:     {hl7.AE, hl7.CE, hl7.ErrCodeDataType, "MSH^1^10", "Malformed MSH-10", "bad_msh10", true},
	failTypeNotAccepted:  {hl7.AR, hl7.CR, hl7.ErrCodeUnsupportedMessageType, "MSH^1^9^1^1", "Unsupported message type", "type_not_accepted", true},
	failEventNotAccepted: {hl7.AR, hl7.CR, hl7.ErrCodeUnsupportedEvent, "MSH^1^9^1^2", "Unsupported event code", "event_not_accepted", true},
	failProcessingID:     {hl7.AR, hl7.CR, hl7.ErrCodeUnsupportedProcessingID, "MSH^1^11", "Unsupported processing ID", "processing_id_not_accepted", true},
	failVersion:          {hl7.AR, hl7.CR, hl7.ErrCodeUnsupportedVersion, "MSH^1^12", "Unsupported version", "version_not_accepted", true},
	failTooLarge:         {hl7.AE, hl7.CE, hl7.ErrCodeInternal, "", "Message too large", "frame_too_large", true},
	failStore:            {hl7.AR, hl7.CE, hl7.ErrCodeInternal, "", "Storage failure", "store_failed", false},
	failLowSpace:         {hl7.AR, hl7.CE, hl7.ErrCodeRecordLocked, "", "Storage full, retry later", "low_disk_space", false},
	failBatchesOff:       {hl7.AR, hl7.CR, hl7.ErrCodeUnsupportedMessageType, "", "Batches not accepted", "batches_off", true},
	failUnrouted:         {hl7.AR, hl7.CR, hl7.ErrCodeUnsupportedMessageType, "MSH^1^9", "No route for message", "unrouted", true},
	failBatchRejected:    {hl7.AE, hl7.CE, hl7.ErrCodeSegmentSequence, "", "Batch rejected", "batch_rejected", true},
}
