"""CTGAN synthesis of scarce rows of a tabular training set (e.g. the minority classes), as a component; generated rows are flagged and never copies."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from longtail.balance.component import WholeTableComponent, register
from longtail.balance.sampling import class_sizes
from longtail.core.errors import ConfigError
from longtail.data.columns import SYNTHETIC, WEIGHT

MAX_SAMPLING_ROUNDS = 10


def modelled_columns(table: pl.DataFrame, label: str, columns: Sequence[str] | None) -> list[str]:
    """The given columns plus the label, or every column except the bookkeeping ones."""
    chosen = list(columns) if columns is not None else [c for c in table.columns if c not in (SYNTHETIC, WEIGHT)]
    return chosen if label in chosen else [*chosen, label]


def discrete_columns(table: pl.DataFrame, columns: Sequence[str]) -> list[str]:
    """Columns CTGAN must treat as categories: strings, booleans and categoricals."""
    return [c for c in columns if table.schema[c] in (pl.String, pl.Boolean, pl.Categorical) or isinstance(table.schema[c], pl.Enum)]


def _observed_range(column: pl.Series) -> tuple[int | None, int | None]:
    """The smallest and largest value of an integer column (None where it holds no values)."""
    low, high = column.min(), column.max()
    assert (low is None or isinstance(low, int)) and (high is None or isinstance(high, int))
    return low, high


@register
class CtganSynthesis(WholeTableComponent):
    """Fit CTGAN on the rows of the scarce classes and generate new rows for them, conditioned on the class.

    scarce classes: `classes`, or every class smaller than the largest. Rows generated per class: `rows_per_class`,
    or enough to bring the class up to the largest one. Only `columns` (default: all) and the label are modelled;
    other columns of generated rows are null. A generated row identical to a real one is dropped, so the output
    never holds a disguised copy. The GAN is fitted on all scarce rows at once, so it runs in-process only.
    """

    needs_whole_table = "CTGAN is fitted on every row of the scarce classes at once and checks its rows against the whole table"

    name = "ctgan"

    def __init__(
        self,
        label: str = "label",
        classes: Sequence[object] | None = None,
        rows_per_class: int | None = None,
        columns: Sequence[str] | None = None,
        epochs: int = 300,
        batch_size: int = 500,
        embedding_dim: int = 128,
        layer_width: int = 256,
        pac: int = 10,
        cuda: bool = False,
    ) -> None:
        if batch_size % pac:
            raise ConfigError(f"ctgan: batch_size ({batch_size}) must be a multiple of pac ({pac})")
        self.label, self.classes, self.rows_per_class, self.columns = label, classes, rows_per_class, columns
        self.epochs, self.batch_size, self.embedding_dim, self.layer_width, self.pac, self.cuda = epochs, batch_size, embedding_dim, layer_width, pac, cuda

    def wanted(self, table: pl.DataFrame) -> dict:
        """Rows to generate per scarce class."""
        sizes = class_sizes(table[self.label].to_numpy())
        largest = max(sizes.values())
        scarce = list(self.classes) if self.classes is not None else [c for c, n in sizes.items() if n < largest]
        missing = [c for c in scarce if c not in sizes]
        if missing:
            raise ConfigError(f"ctgan: classes {missing} have no rows to learn from")
        return {c: self.rows_per_class if self.rows_per_class is not None else largest - sizes[c] for c in scarce}

    def _sample_class(self, model: object, value: str, rows: int) -> pl.DataFrame:
        """`rows` generated rows of one class. CTGAN's condition only steers the generator, so rows that came out
        with another label are rejected and more are drawn (a bounded number of times)."""
        kept = pl.DataFrame()
        for _ in range(MAX_SAMPLING_ROUNDS):
            drawn = pl.from_pandas(model.sample(2 * rows, condition_column=self.label, condition_value=value))  # type: ignore[attr-defined]
            kept = pl.concat([kept, drawn.filter(pl.col(self.label) == value)], how="diagonal_relaxed")
            if kept.height >= rows:
                break
        return kept.head(rows)

    def apply(self, table: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
        from ctgan import CTGAN

        wanted = {c: n for c, n in self.wanted(table).items() if n > 0}
        if not wanted:
            return table
        columns = modelled_columns(table, self.label, self.columns)
        scarce = table.filter(pl.col(self.label).is_in(list(wanted))).select(columns)
        categorical = discrete_columns(table, columns)
        if self.label not in categorical:
            scarce = scarce.with_columns(pl.col(self.label).cast(pl.String))
            categorical.append(self.label)
        width = (self.layer_width, self.layer_width)
        model = CTGAN(
            embedding_dim=self.embedding_dim,
            generator_dim=width,
            discriminator_dim=width,
            batch_size=self.batch_size,
            epochs=self.epochs,
            pac=self.pac,
            enable_gpu=self.cuda,
        )
        model.set_random_state(int(rng.integers(2**31 - 1)))
        # Integers are modelled as floats (RDT cannot cast its float output back to unsigned types), then rounded into the observed range.
        integers = [c for c in columns if c not in categorical and table.schema[c].is_integer()]
        model.fit(scarce.with_columns(pl.col(integers).cast(pl.Float64)).to_pandas(), discrete_columns=categorical)
        samples = [self._sample_class(model, str(c), n) for c, n in wanted.items()]
        generated = (
            pl.concat(samples).with_columns(pl.col(c).round().clip(*_observed_range(scarce[c])) for c in integers).cast({c: table.schema[c] for c in columns})
        )
        generated = generated.join(table.select(columns), on=columns, how="anti", nulls_equal=True)
        generated = generated.with_columns(pl.lit(True).alias(SYNTHETIC), pl.lit(1.0).alias(WEIGHT))
        return pl.concat([table, generated], how="diagonal_relaxed").select(table.columns).cast(table.schema)
