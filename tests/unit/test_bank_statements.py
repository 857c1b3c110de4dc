"""Reading statements by bank layout (no database): headers below preamble, dates, amounts, UTRs, refusals."""
from datetime import date
from pathlib import Path

import pytest

from tests.recon_support import (HDFC_HEADER, cash, charge, hdfc_csv, imps, neft, rtgs, sbi_xlsx, upi)
from webapp.bank_layouts import BANK_LAYOUTS, layout_problem, layouts_problem
from webapp.errors import ValidationError
from webapp.services import statements

D1, D2 = date(2026, 11, 2), date(2026, 11, 3)
SAMPLES = Path("/work/shared/samples")


def read(data: bytes, bank: str = "HDFC", layout: dict | None = None):
    return statements.read_statement(data, bank, layout or BANK_LAYOUTS[bank], max_lines=1000)


def refused(data: bytes, bank: str = "HDFC", layout: dict | None = None) -> dict:
    with pytest.raises(ValidationError) as error:
        read(data, bank, layout)
    return error.value.fields


def test_hdfc_csv_lines_modes_and_utrs():
    parsed = read(hdfc_csv([neft(D1, "8884.88", "HDFCN26306258176"), upi(D1, "11122.22", "154335349840"),
                            imps(D2, "2368.92", "691937865764"), cash(D2, "25000.00"), charge(D2, "1500.00")]))
    lines = parsed.lines
    assert [l.row_number for l in lines] == [2, 3, 4, 5, 6]
    assert [l.mode for l in lines] == ["NEFT", "UPI", "IMPS", "CASH", "CHEQUE"]
    assert [l.direction for l in lines] == ["CREDIT"] * 4 + ["DEBIT"]
    assert [l.amount_paise for l in lines] == [888_488, 1_112_222, 236_892, 2_500_000, 150_000]
    # The padded UPI reference "0000154335349840" becomes the 12-digit RRN a payment is booked with.
    assert [l.utr for l in lines] == ["HDFCN26306258176", "154335349840", "691937865764", None, None]
    assert [l.utr_source for l in lines] == ["REFERENCE"] * 3 + [None, None]
    assert lines[1].bank_reference == "0000154335349840"
    assert (parsed.period_from, parsed.period_to, parsed.warnings) == (D1, D2, [])
    assert parsed.opening_balance_paise == 125_000_000 and parsed.closing_balance_paise == 125_000_000 + 4_737_602 - 150_000


def test_sbi_xlsx_preamble_header_and_utr_from_the_description():
    data = sbi_xlsx([rtgs(D1, "11122.22", "SBINR52026110294212661"), rtgs(D2, "8884.88", "SBINR52026110363241552")],
                    period=(date(2026, 11, 1), date(2026, 11, 27)))
    parsed = read(data, "SBI")
    assert parsed.file_format == "XLSX" and parsed.account_number == "00000012345678901"
    assert (parsed.period_from, parsed.period_to) == (date(2026, 11, 1), date(2026, 11, 27))  # from the preamble
    assert [l.row_number for l in parsed.lines] == [6, 7]  # the file's own row numbers, preamble included
    assert [(l.mode, l.utr, l.utr_source) for l in parsed.lines] == [
        ("RTGS", "SBINR52026110294212661", "NARRATION"), ("RTGS", "SBINR52026110363241552", "NARRATION")]
    assert parsed.lines[0].bank_reference == "TRANSFER FROM 9855630065"  # kept, not taken for a UTR


def test_xlsx_amounts_as_text_and_dates_as_real_dates():
    import openpyxl, io
    from datetime import datetime

    data = sbi_xlsx([rtgs(D1, "1,11,122.22", "SBINR52026110294212661")], numeric=False)
    assert read(data, "SBI").lines[0].amount_paise == 11_112_222
    workbook = openpyxl.load_workbook(io.BytesIO(sbi_xlsx([rtgs(D1, "100.50", "SBINR52026110294212661")])))
    workbook.active["A5"] = datetime(2026, 11, 2)  # a real date cell needs no format
    buffer = io.BytesIO()
    workbook.save(buffer)
    assert read(buffer.getvalue(), "SBI").lines[0].txn_date == D1


@pytest.mark.skipif(not SAMPLES.exists(), reason="shared sample layouts not on this machine")
def test_the_shared_sample_files_read_cleanly():
    hdfc = read((SAMPLES / "bank-statement-hdfc-layout.csv").read_bytes())
    assert len(hdfc.lines) == 13 and hdfc.warnings == [] and sum(l.direction == "DEBIT" for l in hdfc.lines) == 1
    sbi = read((SAMPLES / "bank-statement-sbi-layout.xlsx").read_bytes(), "SBI")
    assert len(sbi.lines) == 8 and all(l.utr and len(l.utr) == 22 for l in sbi.lines)


def test_missing_column_names_the_header_row_and_the_column():
    header = [h for h in HDFC_HEADER if h != "Deposit Amt."]
    fields = refused(hdfc_csv([], header=header) + b"02/11/26,x,1,02/11/26,,100.00\n")
    assert fields == {"row 1": "the header row lacks column(s) 'Deposit Amt.'"}
    assert "no header row" in refused(b"just,some,text\n1,2,3\n")["header"]


def test_bad_rows_are_all_reported_by_row_and_column():
    data = hdfc_csv([neft(D1, "8884.88", "HDFCN26306258176"),
                     ("31/02/26", "NEFT CR-X-HDFCN26306258177", "HDFCN26306258177", "100.00", None),
                     (D2, "UPI-A-123456789012-EMI", "123456789012", "12a.00", None),
                     (D2, "IMPS-123456789013-B", "123456789013", "100.001", None, "12,50,000.00 Crr"),
                     (D2, "BOTH", "", "5.00", "6.00"),
                     (D2, "NEITHER", "", None, None)])
    fields = refused(data)
    assert fields["row 3, Date"] == "'31/02/26' is not a date as dd/mm/yy or dd/mm/yyyy"
    assert fields["row 4, Deposit Amt."] == "'12a.00' is not an amount"
    assert fields["row 5, Deposit Amt."] == "'100.001' has more than 2 decimal places"
    assert "row 5, Closing Balance" in fields
    assert "both a Withdrawal Amt. and a Deposit Amt." in fields["row 6"]
    assert "neither" in fields["row 7"]


def test_wrong_kind_of_file_for_the_bank():
    assert "HDFC statements are imported as CSV" in refused(sbi_xlsx([rtgs(D1, "1.00", "SBINR52026110294212661")]))["file"]
    assert "SBI statements are imported as XLSX" in refused(hdfc_csv([neft(D1, "1.00", "HDFCN26306258176")]), "SBI")["file"]
    assert "not a readable Excel" in refused(b"PK\x03\x04 not really a zip", "SBI")["file"]
    assert "old binary .xls" in refused(b"\xd0\xcf\x11\xe0 legacy", "SBI")["file"]
    assert refused(b"")["file"] == "is empty"
    assert "not utf-8-sig text" in refused("Date,Narration\n".encode("utf-16"))["file"]
    assert "no transaction rows" in refused(hdfc_csv([]))["file"]


def test_a_balance_gap_is_a_warning_not_a_refusal():
    rows = [neft(D1, "100.00", "HDFCN26306258176"), neft(D1, "200.00", "HDFCN26306258177") + ("9999.00",),
            neft(D2, "50.00", "HDFCN26306258178")]
    parsed = read(hdfc_csv(rows, opening="1000.00"))
    assert len(parsed.lines) == 3 and len(parsed.warnings) == 1
    assert parsed.warnings[0].startswith("row 3: the balance ₹9,999.00 does not follow from row 2")
    assert "a gap of ₹8,699.00" in parsed.warnings[0]


def test_footer_rows_end_the_table_and_blank_rows_are_skipped():
    data = hdfc_csv([neft(D1, "100.00", "HDFCN26306258176")]) + b"\n,,,,,,\n*** End of statement ***,,,,,,\nrubbish,1\n"
    assert len(read(data).lines) == 1


@pytest.mark.parametrize("raw, mode, expected", [
    ("0000154335349840", "UPI", "154335349840"),      # zero padding in front is removed
    ("1000154335349840", "UPI", None),                # … but never a non-zero digit
    ("000000000000000", "CASH", None),                # zeros are no reference
    (" hdfcn26306258176 ", "NEFT", "HDFCN26306258176"),
    ("HDFCN26306258176", "IMPS", None),               # the shape must fit the mode
    ("SBINR52026110294212661", "OTHER", "SBINR52026110294212661"),
    ("KRISHNAMURTHYRAOX", "NEFT", None),              # letters only: a name, not a UTR
])
def test_utr_normalisation(raw, mode, expected):
    assert statements.normalise_utr(raw, mode) == expected


def test_two_candidate_utrs_in_a_narration_take_neither():
    row = (D1, "UPI-919876543210@paytm-154335349840-EMI", "", "100.00", None)
    parsed = read(hdfc_csv([row]))
    assert parsed.lines[0].utr is None and "several possible UTRs" in parsed.warnings[0]


def test_a_new_bank_is_data_single_amount_column_with_cr_dr():
    layout = {"label": "Axis (test)", "formats": ["CSV"], "date_formats": ["%Y-%m-%d"],
              "columns": {"txn_date": "Tran Date", "narration": "Particulars", "amount": "Amount",
                          "direction": "DR/CR", "balance": "Balance"},
              "direction_values": {"CR": "CREDIT", "DR": "DEBIT"}, "newest_first": True}
    assert layout_problem("AXIS", layout) is None
    data = (b"Axis Bank statement\nAccount 123\n\nTran Date,Particulars,Amount,DR/CR,Balance\n"
            b"2026-11-03,NEFT-AXISN26307000001-X,50.00,DR,1050.00\n"
            b"2026-11-02,IMPS-123456789012-Y,100.00,CR,1100.00\n")
    parsed = read(data, "AXIS", layout)
    assert [(l.row_number, l.direction, l.utr) for l in parsed.lines] == [(6, "CREDIT", "123456789012"),
                                                                           (5, "DEBIT", None)]
    assert parsed.warnings == []  # oldest first for the balance check: 1100 − 50 = 1050


def test_layouts_are_validated():
    assert layouts_problem(BANK_LAYOUTS) is None
    assert "either credit and debit" in layout_problem("X1", {"label": "x", "formats": ["CSV"], "date_formats": ["%d"],
                                                               "columns": {"txn_date": "D", "narration": "N"}})
    assert "unknown setting" in layout_problem("X1", {**BANK_LAYOUTS["HDFC"], "colums": {}})
    assert "formats" in layout_problem("X1", {**BANK_LAYOUTS["HDFC"], "formats": ["PDF"]})
