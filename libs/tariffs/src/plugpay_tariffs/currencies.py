"""Active ISO 4217 currency codes and their minor-unit exponents (data, not logic).

Taken from the ISO 4217 list one (current currency and funds); codes without a minor unit
(precious metals, SDR, testing codes) are left out because a tariff cannot be paid in them.
"""

from types import MappingProxyType

_EXPONENT_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_EXPONENT_3 = "BHD IQD JOD KWD LYD OMR TND"
_EXPONENT_4 = "CLF UYW"
_EXPONENT_2 = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN "
    "BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB "
    "EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS "
    "KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN "
    "MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD "
    "SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS "
    "UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG"
)

MINOR_UNIT_EXPONENT: MappingProxyType[str, int] = MappingProxyType(
    {
        code: exponent
        for codes, exponent in (
            (_EXPONENT_0, 0),
            (_EXPONENT_2, 2),
            (_EXPONENT_3, 3),
            (_EXPONENT_4, 4),
        )
        for code in codes.split()
    }
)
"""ISO 4217 alphabetic code → number of decimal places of its minor unit (EUR → 2, JPY → 0)."""

CURRENCIES: frozenset[str] = frozenset(MINOR_UNIT_EXPONENT)
