-- W3C trace context: the `traceparent` header a task was submitted with, passed on to its participant
-- calls and handlers so that the user's own tracing can follow the task across nodes. Null without one.
ALTER TABLE tasks ADD COLUMN traceparent text;
