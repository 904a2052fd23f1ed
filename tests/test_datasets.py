"""The bundled wine-quality data."""

from sknas.datasets import load_wine_quality


def test_wine_quality_has_no_leak_and_right_shape():
    bunch = load_wine_quality(as_frame=True)
    X, y = bunch.data, bunch.target
    assert X.shape == (4898, 11)
    assert "quality" not in X.columns and not any(c.startswith("Unnamed") for c in X.columns)
    assert y.value_counts().to_dict() == {"medium": 3078, "low": 1640, "high": 180}
    X2, y2 = load_wine_quality(return_X_y=True)
    assert X2.shape == (4898, 11) and X2.dtype.kind == "f" and len(y2) == 4898
