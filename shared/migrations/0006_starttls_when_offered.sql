-- 'starttls_optional': STARTTLS when the server offers it, plaintext otherwise. Only the one-shot
-- API (whose JSON has no security field) chooses it, and only where the operator allows
-- plaintext SMTP (SENDPY_SMTP_ALLOW_PLAINTEXT=true, for relays inside a network without TLS).
ALTER TABLE senders DROP CONSTRAINT senders_security_check;
ALTER TABLE senders ADD CONSTRAINT senders_security_check
    CHECK (security IN ('tls', 'starttls', 'starttls_optional', 'none'));
