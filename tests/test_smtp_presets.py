"""Provider presets: detected from the address, security implied by the port."""

from __future__ import annotations

import pytest

from shared.smtp_presets import preset_for_address, security_for_port


@pytest.mark.parametrize(
    ("email", "host", "port", "security"),
    [
        ("a@gmail.com", "smtp.gmail.com", 465, "tls"),
        ("a@yandex.ru", "smtp.yandex.ru", 465, "tls"),
        ("a@Yandex.com", "smtp.yandex.ru", 465, "tls"),
        ("a@mail.ru", "smtp.mail.ru", 465, "tls"),
        ("a@outlook.com", "smtp-mail.outlook.com", 587, "starttls"),
        ("a@hotmail.com", "smtp-mail.outlook.com", 587, "starttls"),
    ],
)
def test_presets_by_domain(email: str, host: str, port: int, security: str) -> None:
    preset = preset_for_address(email)
    assert preset is not None
    assert (preset.host, preset.port, preset.security) == (host, port, security)


def test_unknown_domain_has_no_preset_and_ports_imply_security() -> None:
    assert preset_for_address("a@corp.example") is None
    assert security_for_port(465) == "tls" and security_for_port(587) == "starttls"
