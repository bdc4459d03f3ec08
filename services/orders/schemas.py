"""The orders participant's HTTP and saga models: item lines, the operator restock, availability.

The checkout body's `items` is a plain list of lines; the saga's request wraps it (`ItemsRequest`), sorted by
sku so the same basket in another order is the same request.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from services.types import MAX_NAMED, Amount, Capacity, Counters, Currency, Frozen, Identifier, Quantity


class ItemLine(Frozen):
    sku: Identifier
    quantity: Quantity


def distinct_skus(lines: list[ItemLine]) -> list[ItemLine]:
    skus = [line.sku for line in lines]
    if len(set(skus)) != len(skus):
        raise ValueError("each sku may appear only once in items")
    return lines


ItemLines = Annotated[list[ItemLine], Field(min_length=1, max_length=MAX_NAMED), AfterValidator(distinct_skus)]


class ItemsRequest(Frozen):
    items: ItemLines

    @model_validator(mode="after")
    def _distinct(self) -> ItemsRequest:
        distinct_skus(self.items)
        return self


class ItemInventory(Frozen):
    stock: Capacity
    currency: Currency | None = Field(default=None, description="ISO 4217 code of `price`.")
    price: Amount | None = Field(
        default=None, description="Price of one item in minor units of `currency`; absent: the price stays as it is."
    )

    @model_validator(mode="after")
    def _priced(self) -> ItemInventory:
        if (self.price is None) != (self.currency is None):
            raise ValueError("`price` and `currency` go together: give both or neither")
        return self


class ItemAvailability(Counters):
    sku: str
